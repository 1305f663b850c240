package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/store/damagetest"
)

// TestDamagedStoreRefusedWithReason: a teos.db whose root page is damaged (bbolt panics on
// it) stops teosd at start with a one-line reason, not a Go stack trace.
func TestDamagedStoreRefusedWithReason(t *testing.T) {
	dataDir := t.TempDir()
	path := filepath.Join(dataDir, "regtest", "teos.db")
	newStoreFile(t, path, true)
	damagetest.ZeroRootPage(t, path)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--datadir", dataDir, "--btcnetwork", "regtest", "--btcrpcuser", "u",
		"--btcrpcpassword", "p"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "the database file is damaged") {
		t.Fatalf("exit %d, want 1 with the reason\n%s", code, stderr.String())
	}
	t.Log(strings.TrimSpace(stderr.String()))
}
