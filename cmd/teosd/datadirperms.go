package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// warnOpenDataDir warns when other users of the host can read the data dir: it holds the
// tower key (in the database), the admin RPC's CA and client keys and teos.toml's bitcoind
// password. teosd makes its data dir 0700, but rust-teos makes it 0755 and writes its key
// files 0644, and a data dir taken over from rust-teos is used as it is. Only the "other" bits
// are checked, and only if every parent lets others through (a 0700 home protects it).
func warnOpenDataDir(dir string, log *slog.Logger) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return
	}
	fi, err := os.Stat(abs)
	if err != nil || fi.Mode().Perm()&0o005 == 0 {
		return
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		pi, err := os.Stat(p)
		if err != nil || pi.Mode().Perm()&0o001 == 0 {
			return
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	log.Warn("the data dir is readable by other users of this host: it holds the tower key, the admin RPC's keys "+
		"(anyone with them can stop the tower) and teos.toml's bitcoind password; chmod 700 it",
		"datadir", abs, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
}
