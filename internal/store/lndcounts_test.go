package store

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func testLndID(i int) LndSessionID {
	var id LndSessionID
	id[0] = 3
	binary.BigEndian.PutUint64(id[1:], uint64(i))
	return id
}

func testLndHint(i int) LndHint {
	var h LndHint
	binary.BigEndian.PutUint64(h[:], uint64(i))
	return h
}

// fillLnd stores sessions sessions with perSession updates each, in one transaction per session.
func fillLnd(t testing.TB, s *Store, sessions, perSession int) {
	t.Helper()
	blob := make([]byte, 300)
	for i := range sessions {
		id := testLndID(i)
		err := s.lndUpdate(func(b *lndBuckets) error {
			if b.sessions.Get(id[:]) == nil {
				b.delta.sessions++
			}
			if err := b.sessions.Put(id[:], []byte{1}); err != nil {
				return err
			}
			for j := range perSession {
				h := testLndHint(i*perSession + j)
				if b.updates.Get(lndUpdateKey(h, id)) == nil {
					b.delta.updates++
				}
				if err := b.updates.Put(lndUpdateKey(h, id), blob); err != nil {
					return err
				}
				if err := b.hints.Put(lndSessionHintKey(id, h), []byte{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func rawLndCountsKey(t *testing.T, s *Store) []byte {
	t.Helper()
	var v []byte
	if err := s.ExtView(lndExtName, func(root *bolt.Bucket) error {
		if root != nil {
			v = clone(root.Get(keyLndCounts))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func setLndCountsKey(t *testing.T, s *Store, v []byte) {
	t.Helper()
	if err := s.ExtUpdate(lndExtName, func(root *bolt.Bucket) error {
		if v == nil {
			return root.Delete(keyLndCounts)
		}
		return root.Put(keyLndCounts, v)
	}); err != nil {
		t.Fatal(err)
	}
}

func wantLndCounts(t *testing.T, s *Store, sessions, updates int, step string) {
	t.Helper()
	if n, u, err := s.LndCounts(); err != nil || n != sessions || u != updates {
		t.Fatalf("%s: LndCounts = %d, %d, %v; want %d, %d", step, n, u, err, sessions, updates)
	}
}

// A file without the lnd counts (written before they were kept), or with a damaged or
// implausible key, gets them recounted and stored by the first read or write.
func TestLndCountsRepair(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	// No lnd records at all: zero, and nothing is written.
	wantLndCounts(t, s, 0, 0, "empty")
	if err := s.ExtView(lndExtName, func(root *bolt.Bucket) error {
		if root != nil {
			t.Error("LndCounts created the lnd bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fillLnd(t, s, 3, 4)
	wantLndCounts(t, s, 3, 12, "filled")
	good := rawLndCountsKey(t, s)
	if len(good) != lndCountsLen {
		t.Fatalf("stored counts key %x", good)
	}
	for _, c := range []struct {
		name string
		key  []byte
	}{
		{"missing", nil},
		{"malformed", []byte{1, 2, 3}},
		{"zero with records", encodeLndCounts(lndCounts{})},
		{"negative", encodeLndCounts(lndCounts{-1, 12})},
		{"updates without sessions", encodeLndCounts(lndCounts{0, 5})},
	} {
		setLndCountsKey(t, s, c.key)
		wantLndCounts(t, s, 3, 12, c.name+": read")
		if got := rawLndCountsKey(t, s); string(got) != string(good) {
			t.Fatalf("%s: key after the read %x, want %x", c.name, got, good)
		}
		// A write repairs them too (a tracker write, which changes no count, included).
		setLndCountsKey(t, s, c.key)
		if err := s.LndPutTracker(&Tracker{Height: 1}); err != nil {
			t.Fatal(err)
		}
		if got := rawLndCountsKey(t, s); string(got) != string(good) {
			t.Fatalf("%s: key after a write %x, want %x", c.name, got, good)
		}
	}
	// Totals that drifted so far that a deletion would make them negative are recounted by it.
	setLndCountsKey(t, s, encodeLndCounts(lndCounts{3, 2}))
	if found, err := s.LndDeleteSession(testLndID(0)); err != nil || !found {
		t.Fatalf("LndDeleteSession = %v, %v", found, err)
	}
	wantLndCounts(t, s, 2, 8, "after a delete from drifted totals")
}

// BenchmarkLndCounts: 100,000 updates in 1,000 sessions; "walk" is how LndCounts counted
// before the totals were kept (bucket stats), "stored" is LndCounts now.
func BenchmarkLndCounts(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	fillLnd(b, s, 1000, 100)
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			var n, u int
			_ = s.lndView(func(lb lndBuckets) error {
				n, u = lb.sessions.Stats().KeyN, lb.updates.Stats().KeyN
				return nil
			})
			if n != 1000 || u != 100_000 {
				b.Fatalf("%d, %d", n, u)
			}
		}
	})
	b.Run("stored", func(b *testing.B) {
		for b.Loop() {
			if n, u, err := s.LndCounts(); err != nil || n != 1000 || u != 100_000 {
				b.Fatalf("%d, %d, %v", n, u, err)
			}
		}
	})
}
