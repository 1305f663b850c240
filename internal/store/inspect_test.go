package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"
)

// writeLayout turns the store file at path (written by this binary, no hand-over queued) into
// the layout an older binary wrote: version 2 had no hand-over bucket, version 1 no counts.
func writeLayout(t testing.TB, path string, version uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if version < 3 {
			if err := tx.DeleteBucket(bktHandOvers); err != nil {
				return err
			}
		}
		if version < 2 {
			if err := meta.Delete(keyCounts); err != nil {
				return err
			}
		}
		return putVersion(meta, version)
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
}

// writeSampleStore writes two tower keys, three users, four appointments (one with a tracker) and a
// last block.
func writeSampleStore(t testing.TB, path string) {
	t.Helper()
	s := mustOpen(t, path, nil)
	for i := range 2 {
		if err := s.AddTowerKey([32]byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	registerAll(t, s, 3, 100, 1000)
	for i := range 4 {
		a := testAppointment(testUser(i%3), testLocator(i), 100)
		mustUpsert(t, s, a)
		if i == 0 {
			tr := sampleTracker()
			tr.UUID = a.UUID()
			if err := s.PutTracker(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.SetLastBlock(chainhash.Hash{9}, 500); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInspectWritesNothing: Inspect answers for every layout this binary can upgrade, and
// leaves the file byte-identical, where Open would upgrade it.
func TestInspectWritesNothing(t *testing.T) {
	for version := uint32(1); version <= dbVersion; version++ {
		for _, filled := range []bool{true, false} {
			path := filepath.Join(t.TempDir(), "teos.db")
			if filled {
				writeSampleStore(t, path)
			} else if err := mustOpen(t, path, nil).Close(); err != nil {
				t.Fatal(err)
			}
			writeLayout(t, path, version)
			before := readAll(t, path)

			c, err := Inspect(path)
			if err != nil {
				t.Fatalf("v%d: %v", version, err)
			}
			want := Contents{Version: version}
			if filled {
				want = Contents{Version: version, TowerKeys: 2, Users: 3, Appointments: 4, Trackers: 1, HasLastBlock: true}
			}
			if c != want || c.Empty() == filled {
				t.Fatalf("v%d filled=%v: Inspect = %+v (empty %v), want %+v", version, filled, c, c.Empty(), want)
			}
			if !bytes.Equal(readAll(t, path), before) {
				t.Fatalf("v%d filled=%v: Inspect changed the file", version, filled)
			}
			// The test would pass vacuously if nothing ever wrote: Open does (the upgrade, the
			// version stamp).
			if err := mustOpen(t, path, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(readAll(t, path), before) {
				t.Fatalf("v%d filled=%v: Open left the file as it was", version, filled)
			}
		}
	}
}

func TestInspectSpecialFiles(t *testing.T) {
	dir := t.TempDir()

	t.Run("zero bytes", func(t *testing.T) { // created, never written by bbolt: empty
		path := filepath.Join(dir, "zero.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if c, err := Inspect(path); err != nil || !c.Empty() {
			t.Fatalf("Inspect = %+v, %v", c, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
			t.Fatalf("after Inspect: %v %v", fi, err)
		}
	})

	t.Run("newer version", func(t *testing.T) {
		path := filepath.Join(dir, "newer.db")
		writeSampleStore(t, path)
		writeLayout(t, path, dbVersion+1)
		before := readAll(t, path)
		if _, err := Inspect(path); !errors.Is(err, ErrNewerVersion) {
			t.Fatalf("Inspect = %v, want ErrNewerVersion", err)
		}
		if !bytes.Equal(readAll(t, path), before) {
			t.Fatal("Inspect changed the file")
		}
	})

	t.Run("not a store", func(t *testing.T) {
		path := filepath.Join(dir, "garbage.db")
		garbage := bytes.Repeat([]byte("not bbolt"), 2000)
		if err := os.WriteFile(path, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Inspect(path)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Inspect = %v, want a one-line error", err)
		}
		if !bytes.Equal(readAll(t, path), garbage) {
			t.Fatal("Inspect changed the file")
		}
	})

	t.Run("damaged totals", func(t *testing.T) { // counted from the records instead
		path := filepath.Join(dir, "damaged.db")
		writeSampleStore(t, path)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Put(keyCounts, []byte("garbage")) })
		if cerr := db.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		c, err := Inspect(path)
		if err != nil || c.Users != 3 || c.Appointments != 4 || c.Trackers != 1 {
			t.Fatalf("Inspect = %+v, %v", c, err)
		}
	})

	t.Run("open by teosd", func(t *testing.T) { // bbolt's exclusive lock: refuse, do not wait
		path := filepath.Join(dir, "held.db")
		s := mustOpen(t, path, nil)
		defer s.Close()
		if _, err := Inspect(path); err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Fatalf("Inspect = %v, want a lock error", err)
		}
	})
}

func readAll(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInspectDamagedPageIsAnError: a v1 file (no stored totals) is counted by walking the
// buckets; a damaged page there makes bbolt panic, which Inspect turns into ErrCorrupt.
func TestInspectDamagedPageIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	registerAll(t, s, 2000, 100, 1000) // enough users for the bucket to have pages of its own
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeLayout(t, path, 1)

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	err = db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bktUsers).Root())
		return nil
	})
	pageSize := db.Info().PageSize
	if cerr := db.Close(); err != nil || cerr != nil || root == 0 {
		t.Fatalf("users bucket root %d (%v, %v)", root, err, cerr)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, pageSize), int64(root)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Inspect(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Inspect of a damaged v1 file: %v, want ErrCorrupt", err)
	}
}
