//go:build unix

package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// TestLockNetworkDir: one holder at a time; a dir not created yet is not locked (nor created);
// a tower on PostgreSQL is not locked.
func TestLockNetworkDir(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.DataDir, cfg.BTCNetwork = t.TempDir(), "regtest"
	if release, err := lockNetworkDir(&cfg, log); release != nil || err != nil {
		t.Fatalf("missing dir: %v, %v", release != nil, err)
	}
	if _, err := os.Stat(cfg.NetworkDir()); !os.IsNotExist(err) {
		t.Fatalf("the network dir was created: %v", err)
	}
	if err := os.MkdirAll(cfg.NetworkDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	release, err := lockNetworkDir(&cfg, log)
	if err != nil || release == nil {
		t.Fatal(err)
	}
	if _, err := lockNetworkDir(&cfg, log); err == nil || !strings.Contains(err.Error(), "in use by another teosd") {
		t.Fatalf("second lock: %v", err)
	}
	shared := cfg
	shared.DatabaseURL = "postgres://127.0.0.1/teos"
	if r, err := lockNetworkDir(&shared, log); err != nil || r == nil {
		t.Fatalf("shared database: %v", err)
	}
	release()
	again, err := lockNetworkDir(&cfg, log)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
