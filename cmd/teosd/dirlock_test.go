//go:build unix

package main

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/durable/durabletest"
)

// TestLockNetworkDir: a missing network dir is created (each new name flushed) and locked;
// one holder at a time; a tower on PostgreSQL is not locked; removeCreated undoes only what
// this start created.
func TestLockNetworkDir(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	root := t.TempDir()
	cfg.DataDir, cfg.BTCNetwork = filepath.Join(root, "teos"), "regtest"
	var (
		nd  *netDir
		err error
	)
	syncs := durabletest.Syncs(t, func() { nd, err = lockNetworkDir(&cfg, log) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{root, cfg.DataDir}; !slices.Equal(syncs, want) {
		t.Fatalf("flushed %v, want %v: the new dirs' names", syncs, want)
	}
	if want := []string{cfg.NetworkDir(), cfg.DataDir}; !slices.Equal(nd.created, want) {
		t.Fatalf("created %v, want %v", nd.created, want)
	}
	if _, err := lockNetworkDir(&cfg, log); err == nil || !strings.Contains(err.Error(), "in use by another teosd") {
		t.Fatalf("second lock: %v", err)
	}
	shared := cfg
	shared.DatabaseURL = "postgres://127.0.0.1/teos"
	if r, err := lockNetworkDir(&shared, log); err != nil || r == nil {
		t.Fatalf("shared database: %v", err)
	}
	nd.unlock()
	again, err := lockNetworkDir(&cfg, log)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if len(again.created) != 0 {
		t.Fatalf("created %v, the dir existed", again.created)
	}
	again.removeCreated()
	if _, err := os.Stat(cfg.NetworkDir()); err != nil {
		t.Fatalf("removeCreated removed a dir it did not create: %v", err)
	}
	again.unlock()
	nd.removeCreated()
	if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
		t.Fatalf("removeCreated left the data dir: %v", err)
	}
}

// TestLockDirRemovedMeanwhile: a lock taken on a dir that lost its name meanwhile (another
// teosd's refused import removed the dir it had created) keeps no one out: it is refused as
// missing, and lockNetworkDir then creates the dir afresh.
func TestLockDirRemovedMeanwhile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "regtest")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	opened, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil { // same name, another dir
		t.Fatal(err)
	}
	if _, err := lockOpened(opened, dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lock of a dir that lost its name: %v, want not-exist", err)
	}
	release, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	release()
}
