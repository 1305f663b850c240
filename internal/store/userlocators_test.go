package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// TestAppointmentWalkerAgreesWithGet: for ascending UUIDs, stored or not, near each other or
// far apart, the walker finds exactly what Bucket.Get finds.
func TestAppointmentWalkerAgreesWithGet(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	const n = 3000
	var stored []teos.UUID
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bktAppointments)
		for i := range n {
			a := &Appointment{Appointment: teos.Appointment{Locator: testLocator(i), EncryptedBlob: []byte{byte(i)}}, UserID: testUser(i % 3)}
			id := a.UUID()
			stored = append(stored, id)
			if err := bk.Put(id[:], encodeAppointment(a)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		// A random subset of the stored ones (dense or sparse), plus UUIDs not stored.
		keep := []float64{1, 0.9, 0.5, 0.1, 0.01}[trial%5]
		var ids []teos.UUID
		for _, id := range stored {
			if rng.Float64() < keep {
				ids = append(ids, id)
			}
		}
		for range rng.IntN(20) {
			var id teos.UUID
			for i := range id {
				id[i] = byte(rng.Uint32())
			}
			ids = append(ids, id)
		}
		ids = append(ids, teos.UUID{}, teos.UUID(bytes.Repeat([]byte{0xff}, teos.UUIDLen)))
		slices.SortFunc(ids, func(a, b teos.UUID) int { return bytes.Compare(a[:], b[:]) })
		ids = slices.Compact(ids)
		err := s.db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bktAppointments)
			w := appointmentWalker{c: bk.Cursor()}
			for i, id := range ids {
				want, got := bk.Get(id[:]), w.get(id)
				if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
					t.Fatalf("trial %d, id %d (%x): walker %x, Get %x", trial, i, id, got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestUserLocatorsMissingRecord: an index entry whose appointment record is gone is reported
// as corruption, as before.
func TestUserLocatorsMissingRecord(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	user := testUser(1)
	var appts []*Appointment
	for i := range 10 {
		appts = append(appts, &Appointment{Appointment: teos.Appointment{Locator: testLocator(i), EncryptedBlob: []byte{1}}, UserID: user, UserSignature: "d"})
	}
	if err := s.BulkLoad(map[teos.UserID]UserInfo{user: {SubscriptionExpiry: 100}}, appts); err != nil {
		t.Fatal(err)
	}
	if locs, err := s.UserLocators(user); err != nil || len(locs) != 10 {
		t.Fatalf("UserLocators = %d, %v", len(locs), err)
	}
	victim := appts[4].UUID()
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktAppointments).Delete(victim[:]) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserLocators(user); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("UserLocators with a record missing: %v, want ErrCorrupt", err)
	}
}
