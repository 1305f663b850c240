package main

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/tlsgen"
	"github.com/teos-go/teos/internal/tor"
)

// warnOpenSecrets warns when other users of the host can read files holding secrets: the
// database (with the tower key), the admin RPC's keys (whoever has them can stop the tower)
// and teos.toml (bitcoind's password). teosd writes its own files 0600 in a 0700 data dir,
// but rust-teos makes its data dir 0755 and writes its keys and database 0644, and a data dir
// taken over from rust-teos is used as it is; an operator's teos.toml is often 0644 too.
// Only the "other" bits are checked, through every parent (a 0700 home protects all of it).
func warnOpenSecrets(cfg *config.Config, log *slog.Logger) {
	netDir := cfg.NetworkDir()
	var open []string
	for _, f := range []string{
		cfg.ConfigPath(),
		filepath.Join(cfg.DataDir, tlsgen.CAKeyFile),
		filepath.Join(cfg.DataDir, tlsgen.ServerKeyFile),
		filepath.Join(cfg.DataDir, tlsgen.ClientKeyFile),
		filepath.Join(netDir, storeFileName),
		filepath.Join(netDir, rustTeosFileName),
		filepath.Join(netDir, tor.KeyFileName),
	} {
		if abs, err := filepath.Abs(f); err == nil && readableByOthers(abs) {
			open = append(open, abs)
		}
	}
	if len(open) > 0 {
		log.Warn("files holding the tower's secrets are readable by other users of this host; chmod -R go= the data dir",
			"datadir", cfg.DataDir, "files", open)
	}
}

// readableByOthers: the file grants "other" read, and every directory above it lets others in.
func readableByOthers(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return false
	}
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		di, err := os.Stat(p)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}
