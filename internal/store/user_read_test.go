package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkUser is the gatekeeper's read of a user on every authenticated request.
func BenchmarkUser(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), nil)
	b.Cleanup(func() { _ = s.Close() })
	const users = 1024
	registerAll(b, s, users, ^uint32(0), ^uint32(0))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.User(testUser(i % users)); !ok || err != nil {
			b.Fatal(ok, err)
		}
		i++
	}
}

// TestUserDamagedRecord: User reads the users bucket alone and still reports a record it
// cannot decode as an error, not as a missing user.
func TestUserDamagedRecord(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	id := testUser(1)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktUsers).Put(id[:], []byte{0xff, 1, 2})
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.User(id); err == nil || ok {
		t.Fatalf("User of a damaged record = %v, %v; want an error", ok, err)
	}
	if _, ok, err := s.User(testUser(2)); ok || err != nil {
		t.Fatalf("User of a missing user = %v, %v", ok, err)
	}
}
