// Package damagetest damages a closed bbolt file the way a torn write or a bad sector would,
// for tests of how the store and teosd take it.
package damagetest

import (
	"bytes"
	"encoding/binary"
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

// ZeroPageHolding zeroes the header of the leaf page, in the tree of the bucket at the path
// of bucket names of the bbolt file at path, that holds pattern (the first in key order). Copies
// elsewhere are passed over: on free pages (bbolt writes a changed page anew and frees the
// old one, in numbers that vary with how the writes were batched) damage is never read, and
// another bucket may hold the same bytes (users and user_expiry both hold a user's id).
func ZeroPageHolding(t testing.TB, path string, pattern []byte, bucket ...string) {
	t.Helper()
	var root int
	pageSize := inspect(t, path, func(tx *bolt.Tx) {
		b := tx.Bucket([]byte(bucket[0]))
		for _, name := range bucket[1:] {
			if b != nil {
				b = b.Bucket([]byte(name))
			}
		}
		if b != nil {
			root = int(b.Root())
		}
	})
	if root == 0 {
		t.Fatalf("no bucket %q with pages of its own", bucket)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt's page layout (in the machine's byte order, little-endian where tests run): a
	// 16-byte header (id u64, flags u16, count u16, overflow u32), then, on a branch page,
	// 16-byte elements whose last 8 bytes are a child's page id.
	const branchFlag, leafFlag = 0x01, 0x02
	page := -1
	var walk func(id int)
	walk = func(id int) {
		at := id * pageSize
		if page >= 0 || at+16 > len(raw) {
			return
		}
		flags, count := binary.LittleEndian.Uint16(raw[at+8:]), int(binary.LittleEndian.Uint16(raw[at+10:]))
		switch {
		case flags&branchFlag != 0:
			for i := range count {
				walk(int(binary.LittleEndian.Uint64(raw[at+16+16*i+8:])))
			}
		case flags&leafFlag != 0:
			end := min(at+(1+int(binary.LittleEndian.Uint32(raw[at+12:])))*pageSize, len(raw))
			if bytes.Contains(raw[at:end], pattern) {
				page = id
			}
		}
	}
	walk(root)
	if page < 0 {
		t.Fatalf("pattern not found in bucket %q", bucket)
	}
	zeroPageAt(t, path, func([]byte) int { return page * pageSize }, pageSize)
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
