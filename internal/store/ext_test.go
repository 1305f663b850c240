package store

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestExtBuckets(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.ExtView("lnd", func(b *bolt.Bucket) error {
		if b != nil {
			t.Error("bucket exists before the first write")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ExtUpdate("lnd", func(b *bolt.Bucket) error { return b.Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	// A failing update leaves nothing behind.
	boom := errors.New("boom")
	if err := s.ExtUpdate("lnd", func(b *bolt.Bucket) error {
		if err := b.Put([]byte("k2"), []byte("v2")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("update error = %v", err)
	}
	if err := s.ExtView("lnd", func(b *bolt.Bucket) error {
		if got := string(b.Get([]byte("k"))); got != "v" {
			t.Errorf("k = %q", got)
		}
		if b.Get([]byte("k2")) != nil {
			t.Error("rolled-back write visible")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The tower's own records are untouched and out of reach.
	if u, a, tr, err := s.Counts(); err != nil || u+a+tr != 0 {
		t.Fatalf("counts %d %d %d %v", u, a, tr, err)
	}
	for _, bad := range []string{"", "a b", "x\x00", string(make([]byte, 65))} {
		if err := s.ExtUpdate(bad, func(*bolt.Bucket) error { return nil }); !errors.Is(err, ErrExtName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
}
