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

// ZeroPageHolding zeroes the header of the page of the bbolt file at path that holds the
// first copy of pattern. That may be a page a later commit freed, which nothing reads: a file
// written by more than one transaction needs ZeroLeafHolding.
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

// ZeroLeafHolding zeroes the header of the leaf page that holds key in the bucket named
// bucket (a top-level bucket with pages of its own), found from the bucket's root as bbolt
// finds it. Unlike ZeroPageHolding it cannot hit a stale copy of the data: the pages a commit
// freed keep their old contents, and another bucket's keys may hold the same bytes.
func ZeroLeafHolding(t testing.TB, path string, bucket, key []byte) {
	t.Helper()
	pageSize, root := bucketRoot(t, path, bucket)
	zeroPageAt(t, path, func(raw []byte) int { return leafOf(t, raw, pageSize, root, key, true) }, pageSize)
}

// ZeroLeafFor zeroes the header of the leaf page a lookup of key reaches in the bucket at
// path (nested bucket names, outermost first; a bucket with pages of its own), whether or not
// key is stored there: a read of key then meets the damage.
func ZeroLeafFor(t testing.TB, file string, key []byte, path ...[]byte) {
	t.Helper()
	pageSize, root := bucketRoot(t, file, path...)
	zeroPageAt(t, file, func(raw []byte) int { return leafOf(t, raw, pageSize, root, key, false) }, pageSize)
}

// bucketRoot returns the file's page size and the root page of the bucket at path.
func bucketRoot(t testing.TB, file string, path ...[]byte) (pageSize int, root uint64) {
	t.Helper()
	pageSize = inspect(t, file, func(tx *bolt.Tx) {
		if len(path) == 0 {
			return
		}
		b := tx.Bucket(path[0])
		for _, name := range path[1:] {
			if b == nil {
				return
			}
			b = b.Bucket(name)
		}
		if b != nil {
			root = uint64(b.Root())
		}
	})
	if root == 0 {
		t.Fatalf("bucket %q is missing or inline", path)
	}
	return pageSize, root
}

// bbolt's page layout (native byte order: little-endian on the machines teos-go runs on): a
// 16-byte header (id 8, flags 2, count 2, overflow 4), then count 16-byte elements, whose key
// is at the element's offset plus pos. A branch element is pos 4, ksize 4, child page id 8; a
// leaf element is flags 4, pos 4, ksize 4, vsize 4.
const (
	pageHeaderSize = 16
	elementSize    = 16
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
)

// leafOf descends from page id to the leaf a lookup of key reaches and returns its offset in
// raw; with held, key must be in that leaf.
func leafOf(t testing.TB, raw []byte, pageSize int, id uint64, key []byte, held bool) int {
	t.Helper()
	le := binary.LittleEndian
	for depth := 0; depth < 64; depth++ {
		off := int(id) * pageSize
		if off+pageHeaderSize > len(raw) {
			t.Fatalf("page %d is past the file's %d bytes", id, len(raw))
		}
		flags, count := le.Uint16(raw[off+8:]), int(le.Uint16(raw[off+10:]))
		elemKey := func(i int, keyAt int) []byte {
			e := off + pageHeaderSize + i*elementSize
			pos, ksize := int(le.Uint32(raw[e+keyAt:])), int(le.Uint32(raw[e+keyAt+4:]))
			return raw[e+pos : e+pos+ksize]
		}
		switch {
		case flags&leafPageFlag != 0:
			if !held {
				return off
			}
			for i := range count {
				if bytes.Equal(elemKey(i, 4), key) {
					return off
				}
			}
			t.Fatalf("key %x is not in the leaf page %d it belongs to", key, id)
		case flags&branchPageFlag != 0 && count > 0:
			// As bbolt's cursor: the first element whose key is >= key, or the one before it
			// when that key is greater.
			i := 0
			for i < count && bytes.Compare(elemKey(i, 0), key) < 0 {
				i++
			}
			if i == count || (i > 0 && !bytes.Equal(elemKey(i, 0), key)) {
				i--
			}
			id = le.Uint64(raw[off+pageHeaderSize+i*elementSize+8:])
		default:
			t.Fatalf("page %d has flags %#x, not a branch or leaf page", id, flags)
		}
	}
	t.Fatal("no leaf found within 64 levels")
	return 0
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
