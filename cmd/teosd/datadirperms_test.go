package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// writeAs writes data at path with mode (whatever the umask).
func writeAs(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("secret"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, mode os.FileMode, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWarnOpenSecrets(t *testing.T) {
	// A data dir as rust-teos leaves it: 0755, its keys and database 0644; teos.toml 0644.
	rustLike := func(t *testing.T) *config.Config {
		root := t.TempDir()
		dir := filepath.Join(root, ".teos")
		cfg := config.Default()
		cfg.DataDir, cfg.BTCNetwork = dir, "regtest"
		writeAs(t, cfg.ConfigPath(), 0o644)
		writeAs(t, filepath.Join(dir, "ca-key.pem"), 0o644)
		writeAs(t, filepath.Join(dir, "ca.pem"), 0o644) // a certificate: public
		writeAs(t, filepath.Join(dir, "regtest", "teos_db.sql3"), 0o644)
		writeAs(t, filepath.Join(dir, "regtest", "teos.db"), 0o600)
		// t.TempDir's parent is 0700: open the way as /var/lib or a 0755 home would.
		chmod(t, 0o755, filepath.Dir(root), root, dir, filepath.Join(dir, "regtest"))
		return &cfg
	}
	warned := func(cfg *config.Config) string {
		var logs bytes.Buffer
		noTime := func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		warnOpenSecrets(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: noTime})))
		return logs.String()
	}

	cfg := rustLike(t)
	logs := warned(cfg)
	want := `level=WARN msg="files holding the tower's secrets are readable by other users of this host; chmod -R go= the data dir" datadir=` +
		cfg.DataDir + " files=\"[" + cfg.ConfigPath() + " " + filepath.Join(cfg.DataDir, "ca-key.pem") + " " +
		filepath.Join(cfg.DataDir, "regtest", "teos_db.sql3") + "]\"\n"
	if logs != want {
		t.Fatalf("rust-teos's modes: logged\n%s\nwant\n%s", logs, want)
	}

	// The operator's fix, the README's chmod -R go=: nothing to say.
	cfg = rustLike(t)
	if err := filepath.Walk(cfg.DataDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chmod(p, fi.Mode().Perm()&0o700)
	}); err != nil {
		t.Fatal(err)
	}
	if logs := warned(cfg); logs != "" {
		t.Fatalf("after chmod -R go=: %s", logs)
	}

	// A data dir others cannot enter protects the files in it.
	cfg = rustLike(t)
	chmod(t, 0o700, cfg.DataDir)
	if logs := warned(cfg); logs != "" {
		t.Fatalf("0700 data dir: %s", logs)
	}

	// So does a 0700 parent (a home directory).
	cfg = rustLike(t)
	chmod(t, 0o700, filepath.Dir(cfg.DataDir))
	if logs := warned(cfg); logs != "" {
		t.Fatalf("0700 home: %s", logs)
	}
}
