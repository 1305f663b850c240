package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// A bbolt transaction id is not the identity of a file's contents: a compaction (bbolt
// compact, teos-scale's fixtures) starts the copy's ids again from 1 and keeps meta, epoch
// included. A writer that does not know the filter (an older teosd, a NoLocatorFilter open)
// then brings the id back up to the saved one with other contents; the saved filter must not
// be trusted for them, or a block misses the appointments it added.
func TestLocatorFilterFileRefusedAfterCompactionAndForeignWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	locs := fillStore(t, s, 0, 500)
	for i := range 20 { // more commits, so the saved id is well above the compacted file's
		register(t, s, testUser(100+i), 100, 1000)
	}
	waitFilter(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var savedID int
	compactInPlace(t, path, &savedID, true)

	// A writer unaware of the filter adds appointments until the id is the saved one again.
	s = mustOpen(t, path, &Options{NoSync: true, NoLocatorFilter: true})
	user := testUser(1)
	var added []teos.Locator
	for i := 0; commits(t, s) < savedID; i++ {
		l := testLocator(1_000_000 + i)
		if _, err := s.UpsertAppointment(testAppointment(user, l, 10), func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }); err != nil {
			t.Fatal(err)
		}
		added = append(added, l)
	}
	if got := commits(t, s); got != savedID || len(added) == 0 {
		t.Fatalf("transaction id %d after %d adds, want %d", got, len(added), savedID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, &Options{NoSync: true})
	defer s.Close()
	waitFilter(t, s)
	wantAllFound(t, s, append(locs, added...))
}

// compactInPlace replaces the file at path by a bbolt compaction of it, as `bbolt compact`
// and teos-scale do, and returns in *savedID the transaction id the original ended at.
// With room, it checks that the copy's id is well below the original's.
func compactInPlace(t *testing.T, path string, savedID *int, room bool) {
	t.Helper()
	src, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = src.View(func(tx *bolt.Tx) error { *savedID = tx.ID(); return nil })
	dst, err := bolt.Open(path+".compact", 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(dst, src, 0); err != nil {
		t.Fatal(err)
	}
	var newID int
	_ = dst.View(func(tx *bolt.Tx) error { newID = tx.ID(); return nil })
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := renameFile(path+".compact", path); err != nil {
		t.Fatal(err)
	}
	if room && newID >= *savedID-2 {
		t.Fatalf("compacted id %d, original %d: no room for the scenario", newID, *savedID)
	}
}

func renameFile(from, to string) error { return os.Rename(from, to) }

// The same with the writes of an older teosd, which knows nothing of the filter and so
// leaves its epoch in meta: bare bbolt transactions doing what the store's add does.
func TestLocatorFilterFileRefusedAfterCompactionAndOlderBinaryWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	locs := fillStore(t, s, 0, 500)
	for i := range 20 {
		register(t, s, testUser(100+i), 100, 1000)
	}
	waitFilter(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var savedID int
	compactInPlace(t, path, &savedID, true)

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	user := testUser(1)
	var added []teos.Locator
	id := func() (n int) { _ = db.View(func(tx *bolt.Tx) error { n = tx.ID(); return nil }); return n }
	for i := 0; id() < savedID; i++ {
		a := testAppointment(user, testLocator(2_000_000+i), 10)
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := openBuckets(tx)
			if err != nil {
				return err
			}
			if b.filters != nil {
				t.Fatal("a bare bbolt handle has the store's filter")
			}
			if _, err := upsertAppointment(b, a, encodeAppointment(a), func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }, nil); err != nil {
				return err
			}
			return b.flushCounts()
		})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, a.Locator)
	}
	if got := id(); got != savedID || len(added) == 0 {
		t.Fatalf("transaction id %d after %d adds, want %d", got, len(added), savedID)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, path, &Options{NoSync: true})
	defer s.Close()
	if st := waitFilter(t, s); st.Loaded {
		t.Fatalf("%+v: the filter saved before the compaction was loaded", st)
	}
	wantAllFound(t, s, append(locs, added...))
}
