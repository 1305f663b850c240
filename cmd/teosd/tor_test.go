package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/tor"
)

// The advice that comes with an onion key error: only a file that is not a key is worth
// moving away (for a new key, and with it a new onion address every onion user must learn).
// A key teosd cannot read (a link to an unmounted volume, a file of another owner) is still
// the tower's address: the advice must not be to give it up.
func TestLoadOnionAdvice(t *testing.T) {
	const giveUp = "new onion address"
	for name, tc := range map[string]struct {
		setup      func(t *testing.T, path string)
		wantGiveUp bool
	}{
		"not a key": {func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("random stuff"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		"link to a missing file": {func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "unmounted", tor.KeyFileName), path); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir, cfg.BTCNetwork, cfg.TorSupport = t.TempDir(), "regtest", true
			if err := os.MkdirAll(cfg.NetworkDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(cfg.NetworkDir(), tor.KeyFileName)
			tc.setup(t, path)
			_, err := loadOnion(&cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("loaded")
			}
			if got := strings.Contains(err.Error(), giveUp); got != tc.wantGiveUp {
				t.Fatalf("error %q: advises a new onion address: %v, want %v", err, got, tc.wantGiveUp)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
		})
	}
}
