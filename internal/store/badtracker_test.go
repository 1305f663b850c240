package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// One damaged tracker record is skipped, and reported, rather than failing the whole listing
// (which the responder reads on every block).
func TestTrackersSkipUnreadableRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	registerAll(t, s, 1, 100, 1000)
	var ids []teos.UUID
	for i := range 2 {
		a := testAppointment(testUser(0), testLocator(i), 100)
		mustUpsert(t, s, a)
		tr := sampleTracker()
		tr.UUID = a.UUID()
		if err := s.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UUID())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktTrackers).Put(ids[0][:], []byte{0xff, 1, 2}) })
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	s = mustOpen(t, path, nil)
	defer s.Close()
	trs, err := s.Trackers()
	if err != nil || len(trs) != 1 || trs[0].UUID != ids[1] {
		t.Fatalf("Trackers = %v, %v; want only the readable one", trs, err)
	}
	trs, bad, err := s.TrackersChecked()
	if err != nil || len(trs) != 1 || len(bad) != 1 || bad[0].UUID != ids[0] || bad[0].Err == nil {
		t.Fatalf("TrackersChecked = %v, %v, %v", trs, bad, err)
	}
	if _, err := s.Tracker(ids[0]); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Tracker(damaged) = %v, want a decode error", err)
	}
}

// The lnd front end's trackers too: one damaged record is skipped and reported.
func TestLndTrackersSkipUnreadableRecord(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	var ids []teos.UUID
	for i := range 2 {
		tr := sampleTracker()
		tr.UUID = teos.UUID{byte(i + 1)}
		if err := s.LndPutTracker(tr); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tr.UUID)
	}
	if err := s.ExtUpdate(lndExtName, func(root *bolt.Bucket) error {
		return root.Bucket(bktLndTrackers).Put(ids[0][:], []byte{0xff, 1, 2})
	}); err != nil {
		t.Fatal(err)
	}
	trs, err := s.LndTrackers()
	if err != nil || len(trs) != 1 || trs[0].UUID != ids[1] {
		t.Fatalf("LndTrackers = %v, %v; want only the readable one", trs, err)
	}
	trs, bad, err := s.LndTrackersChecked()
	if err != nil || len(trs) != 1 || len(bad) != 1 || bad[0].UUID != ids[0] || bad[0].Err == nil {
		t.Fatalf("LndTrackersChecked = %v, %v, %v", trs, bad, err)
	}
}
