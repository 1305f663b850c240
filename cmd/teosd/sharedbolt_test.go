package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresRefusedBesideBoltStore: turning database_url on for a tower whose state is in
// teos.db is refused with a reason before PostgreSQL is dialled (it would be a new tower key
// to that tower's users); an empty teos.db does not stop it.
func TestPostgresRefusedBesideBoltStore(t *testing.T) {
	for _, withData := range []bool{true, false} {
		dataDir := t.TempDir()
		newStoreFile(t, filepath.Join(dataDir, "regtest", "teos.db"), withData)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--datadir", dataDir, "--btcnetwork", "regtest", "--btcrpcuser", "u",
			"--btcrpcpassword", "p", "--databaseurl", "postgres://teos@127.0.0.1:1/teos"}, &stdout, &stderr)
		refused := strings.Contains(stderr.String(), "database_url is set and a tower on PostgreSQL does not read it")
		if code != 1 || refused != withData {
			t.Fatalf("teos.db with data %v: exit %d, refused for it %v\n%s", withData, code, refused, stderr.String())
		}
	}
}
