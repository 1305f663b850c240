// Package damagetest damages a closed bbolt file the way a torn write or a bad sector would,
// for tests of how the store and teosd take it.
package damagetest

import (
	"bytes"
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// ZeroRootPage zeroes the header of the root bucket's page of the bbolt file at path.
func ZeroRootPage(t testing.TB, path string) {
	t.Helper()
	var root int
	pageSize := inspect(t, path, func(tx *bolt.Tx) { root = int(tx.Cursor().Bucket().Root()) })
	zeroPageAt(t, path, func([]byte) int { return root * pageSize }, pageSize)
}

// ZeroPageHolding zeroes the header of the page of the bbolt file at path that holds the
// first copy of pattern.
func ZeroPageHolding(t testing.TB, path string, pattern []byte) {
	t.Helper()
	pageSize := inspect(t, path, func(*bolt.Tx) {})
	zeroPageAt(t, path, func(raw []byte) int {
		off := bytes.Index(raw, pattern)
		if off < 0 {
			t.Fatal("pattern not found in the file")
		}
		return off / pageSize * pageSize
	}, pageSize)
}

// inspect runs fn in a read transaction of the file and returns its page size.
func inspect(t testing.TB, path string, fn func(*bolt.Tx)) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error { fn(tx); return nil })
	pageSize := db.Info().PageSize
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return pageSize
}

// zeroPageAt clears the id and flags of the page at the offset pageOf finds: no longer the
// page bbolt expects there.
func zeroPageAt(t testing.TB, path string, pageOf func(raw []byte) int, pageSize int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := pageOf(raw)
	if page+pageSize > len(raw) {
		t.Fatalf("page at %d is past the file's %d bytes", page, len(raw))
	}
	clear(raw[page : page+16])
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
