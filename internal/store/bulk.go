package store

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/teos-go/teos/pkg/teos"
)

// BulkLoad writes users and appointments in ONE transaction, with the same records, keys and
// index entries as UpdateUser and UpsertAppointment. It is for scale fixtures, benchmarks and
// importing another tower's database (internal/rustimport): no slots are charged (each user's record is stored exactly as given), an appointment
// that replaces one with the same UUID keeps that UUID's tracker, and one huge transaction
// holds every touched page in memory until it commits, so callers split big loads into
// batches of about 100k appointments.
//
// Every user in users is created or replaced first. An appointment whose owner is neither in
// users nor already stored fails the whole load with ErrUserNotFound and nothing is written.
func (s *Store) BulkLoad(users map[teos.UserID]UserInfo, appts []*Appointment) error {
	type entry struct {
		a      *Appointment
		id     teos.UUID
		record []byte
	}
	entries := make([]entry, 0, len(appts))
	for i, a := range appts {
		if a == nil {
			return fmt.Errorf("bulk load: appointment %d is nil", i)
		}
		entries = append(entries, entry{a: a, id: a.UUID(), record: encodeAppointment(a)})
	}
	// Putting keys in order makes consecutive puts land in the same or neighbouring leaves,
	// which keeps a 100k-key transaction's working set small. Each bucket has its own order.
	putSorted := func(put func(k, v []byte) error, key func(e *entry) []byte, val func(e *entry) []byte) error {
		keys := make([][]byte, len(entries))
		for i := range entries {
			keys[i] = key(&entries[i])
		}
		order := make([]int, len(entries))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(x, y int) int { return bytes.Compare(keys[x], keys[y]) })
		for _, i := range order {
			if err := put(keys[i], val(&entries[i])); err != nil {
				return fmt.Errorf("appointment %s: %w", entries[i].id, err)
			}
		}
		return nil
	}
	empty := func(*entry) []byte { return []byte{} }

	err := s.update(func(b *buckets) error {
		for id, next := range users {
			prev, existed, err := getUser(b, id)
			if err != nil {
				return err
			}
			if err := putUser(b, id, prev, existed, next); err != nil {
				return fmt.Errorf("store user %s: %w", id, err)
			}
		}
		checked := make(map[teos.UserID]struct{})
		for _, e := range entries {
			if _, ok := users[e.a.UserID]; ok {
				continue
			}
			if _, ok := checked[e.a.UserID]; ok {
				continue
			}
			if b.users.Get(e.a.UserID[:]) == nil {
				return fmt.Errorf("appointment %s: %w", e.id, ErrUserNotFound)
			}
			checked[e.a.UserID] = struct{}{}
		}
		putAppt := func(k, v []byte) error { return putAppointmentRecord(b, teos.UUID(k), v) }
		if err := putSorted(putAppt, func(e *entry) []byte { return e.id[:] }, func(e *entry) []byte { return e.record }); err != nil {
			return err
		}
		for _, e := range entries {
			b.addLocator(e.a.Locator) // see locfilter.go
		}
		if err := putSorted(b.locatorIdx.Put, func(e *entry) []byte { return locatorKey(e.a.Locator, e.id) }, empty); err != nil {
			return err
		}
		return putSorted(b.userAppts.Put, func(e *entry) []byte { return userApptKey(e.a.UserID, e.id) }, empty)
	})
	if err != nil {
		return fmt.Errorf("bulk load %d users, %d appointments: %w", len(users), len(appts), err)
	}
	return nil
}

// Sync flushes the file to disk; a store opened with NoSync calls it once after a bulk fill.
func (s *Store) Sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.db.Path(), err)
	}
	return nil
}
