package store

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/teos-go/teos/internal/durable/durabletest"
)

// TestOpenNewFileFlushesItsName: bbolt flushes a new teos.db but not its directory entry, so
// Open flushes the directory after the file: else a power loss could take the whole file, and
// everything acknowledged in it, away.
func TestOpenNewFileFlushesItsName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "teos.db")
	var s *Store
	var err error
	syncs := durabletest.Syncs(t, func() { s, err = Open(path, nil) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	i := slices.Index(syncs, path)
	if i < 0 || !slices.Contains(syncs[i+1:], dir) {
		t.Fatalf("flushed %v: want %s, then its directory", syncs, path)
	}
}
