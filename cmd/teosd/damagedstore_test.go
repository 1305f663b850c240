package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestDamagedStoreRefusedWithReason: a teos.db whose root page is damaged (bbolt panics on
// it) stops teosd at start with a one-line reason, not a Go stack trace.
func TestDamagedStoreRefusedWithReason(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, "regtest", "teos.db")
	newStoreFile(t, path, true)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var root int
	_ = db.View(func(tx *bolt.Tx) error { root = int(tx.Cursor().Bucket().Root()); return nil })
	pageSize := db.Info().PageSize
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw[root*pageSize : root*pageSize+16])
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--datadir", dataDir, "--btcnetwork", "regtest", "--btcrpcuser", "u",
		"--btcrpcpassword", "p"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "the database file is damaged") {
		t.Fatalf("exit %d, want 1 with the reason\n%s", code, stderr.String())
	}
	t.Log(strings.TrimSpace(stderr.String()))
}
