package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// dumpBuckets returns every key and value of every bucket, in order, as printable lines.
func dumpBuckets(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				out = append(out, fmt.Sprintf("%s %x=%x", name, k, v))
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBulkLoadMatchesUpsert(t *testing.T) {
	const nUsers, nAppts = 7, 300
	users := make(map[teos.UserID]UserInfo, nUsers)
	for i := range nUsers {
		users[testUser(i)] = UserInfo{AvailableSlots: uint32(1000 + i), SubscriptionStart: 5, SubscriptionExpiry: uint32(900 + i%3)}
	}
	var appts []*Appointment
	for i := range nAppts {
		appts = append(appts, testAppointment(testUser(i%nUsers), testLocator(i), 1+i%400))
	}
	// Two users share a locator, as two channels' clients could.
	appts = append(appts, testAppointment(testUser(1), testLocator(0), 50))

	dir := t.TempDir()
	// Reference: the normal path, one user and one appointment at a time.
	ref := mustOpen(t, filepath.Join(dir, "ref.db"), &Options{NoSync: true})
	defer ref.Close()
	for id, info := range users {
		if _, err := ref.UpdateUser(id, func(UserInfo, bool) (UserInfo, error) { return info, nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range appts {
		want := users[a.UserID]
		if _, err := ref.UpsertAppointment(a, func(UserInfo, *Appointment, bool) (UserInfo, error) { return want, nil }); err != nil {
			t.Fatal(err)
		}
	}

	path := filepath.Join(dir, "bulk.db")
	bulk := mustOpen(t, path, &Options{NoSync: true})
	// Split in two loads: the second one finds the users already stored.
	if err := bulk.BulkLoad(users, appts[:100]); err != nil {
		t.Fatalf("BulkLoad: %v", err)
	}
	if err := bulk.BulkLoad(nil, appts[100:]); err != nil {
		t.Fatalf("BulkLoad without users: %v", err)
	}
	if err := bulk.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := bulk.Close(); err != nil {
		t.Fatal(err)
	}
	bulk = mustOpen(t, path, nil)
	defer bulk.Close()

	if got, want := dumpBuckets(t, bulk), dumpBuckets(t, ref); !slices.Equal(got, want) {
		t.Fatalf("bulk-loaded file differs from the upserted one: %d vs %d entries", len(got), len(want))
	}

	// And through the normal read API.
	wantCounts(t, bulk, nUsers, nAppts+1, 0)
	for id, info := range users {
		if got := mustUser(t, bulk, id); got != info {
			t.Fatalf("User(%s) = %+v, want %+v", id, got, info)
		}
	}
	a, err := bulk.Appointment(appts[42].UUID())
	if err != nil {
		t.Fatal(err)
	}
	if a.Locator != appts[42].Locator || a.UserID != appts[42].UserID || !bytes.Equal(a.EncryptedBlob, appts[42].EncryptedBlob) ||
		a.UserSignature != appts[42].UserSignature || a.StartBlock != appts[42].StartBlock || a.ToSelfDelay != appts[42].ToSelfDelay {
		t.Fatalf("Appointment = %+v, want %+v", a, appts[42])
	}
	found, err := bulk.AppointmentsByLocators([]teos.Locator{testLocator(0), testLocator(299), testLocator(nAppts + 5)})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || len(found[testLocator(0)]) != 2 || len(found[testLocator(299)]) != 1 {
		t.Fatalf("AppointmentsByLocators found %d locators (%d, %d appointments), want 2 (2, 1)",
			len(found), len(found[testLocator(0)]), len(found[testLocator(299)]))
	}
	ids, err := bulk.UserAppointments(testUser(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := nAppts/nUsers + 1 + 1; len(ids) != want { // 43 by i%7, plus the shared locator
		t.Fatalf("user 1 has %d appointments, want %d", len(ids), want)
	}
	outdated, err := bulk.DeleteOutdatedUsers(900+6, 6) // the expiry index was written too
	if err != nil {
		t.Fatal(err)
	}
	if len(outdated) != 3 { // users 0, 3 and 6 expire at 900
		t.Fatalf("DeleteOutdatedUsers deleted %d users, want 3", len(outdated))
	}
}

func TestBulkLoadUnknownUserWritesNothing(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	users := map[teos.UserID]UserInfo{testUser(0): {AvailableSlots: 10, SubscriptionExpiry: 100}}
	appts := []*Appointment{testAppointment(testUser(0), testLocator(1), 10), testAppointment(testUser(9), testLocator(2), 10)}
	if err := s.BulkLoad(users, appts); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("BulkLoad = %v, want ErrUserNotFound", err)
	}
	if err := s.BulkLoad(users, []*Appointment{nil}); err == nil {
		t.Fatal("BulkLoad accepted a nil appointment")
	}
	wantCounts(t, s, 0, 0, 0)
}

func TestBulkLoadReplacesAppointment(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	users := map[teos.UserID]UserInfo{testUser(0): {AvailableSlots: 10, SubscriptionExpiry: 100}}
	if err := s.BulkLoad(users, []*Appointment{testAppointment(testUser(0), testLocator(1), 10)}); err != nil {
		t.Fatal(err)
	}
	// A new expiry moves the user's expiry index entry, and the same UUID is overwritten.
	users[testUser(0)] = UserInfo{AvailableSlots: 3, SubscriptionExpiry: 200}
	if err := s.BulkLoad(users, []*Appointment{testAppointment(testUser(0), testLocator(1), 77)}); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, 1, 1, 0)
	a, err := s.Appointment(teos.NewUUID(testLocator(1), testUser(0)))
	if err != nil || len(a.EncryptedBlob) != 77 {
		t.Fatalf("Appointment = %v, %v; want the 77-byte replacement", a, err)
	}
	if del, err := s.DeleteOutdatedUsers(100+6, 6); err != nil || len(del) != 0 {
		t.Fatalf("DeleteOutdatedUsers at the old expiry = %v, %v; want none", del, err)
	}
	if del, err := s.DeleteOutdatedUsers(200+6, 6); err != nil || len(del) != 1 {
		t.Fatalf("DeleteOutdatedUsers at the new expiry = %v, %v; want the user", del, err)
	}
}
