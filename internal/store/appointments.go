package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

func locatorKey(loc teos.Locator, id teos.UUID) []byte {
	k := make([]byte, 0, teos.LocatorLen+teos.UUIDLen)
	return append(append(k, loc[:]...), id[:]...)
}

func userApptKey(user teos.UserID, id teos.UUID) []byte {
	k := make([]byte, 0, teos.UserIDLen+teos.UUIDLen)
	return append(append(k, user[:]...), id[:]...)
}

func getAppointment(b *buckets, id teos.UUID) (*Appointment, error) {
	v := b.appointments.Get(id[:])
	if v == nil {
		return nil, ErrNotFound
	}
	a, err := decodeAppointment(v)
	if err != nil {
		return nil, fmt.Errorf("appointment %s: %w", id, err)
	}
	return a, nil
}

// getTracker returns nil, nil when there is no tracker.
func getTracker(b *buckets, id teos.UUID) (*Tracker, error) {
	v := b.trackers.Get(id[:])
	if v == nil {
		return nil, nil
	}
	t, err := decodeTracker(id, v)
	if err != nil {
		return nil, fmt.Errorf("tracker %s: %w", id, err)
	}
	return t, nil
}

// deletedAppointment is what a refund needs to know about a deleted appointment.
type deletedAppointment struct {
	user    teos.UserID
	blobLen int
}

// deleteAppointment removes an appointment, its tracker, its queued hand-over and both index entries. It returns
// nil, nil if there was no such appointment.
func deleteAppointment(b *buckets, id teos.UUID) (*deletedAppointment, error) {
	v := b.appointments.Get(id[:])
	if v == nil {
		return nil, nil
	}
	loc, user, blobLen, err := appointmentHead(v)
	if err != nil {
		return nil, fmt.Errorf("appointment %s: %w", id, err)
	}
	hadTracker := b.trackers.Get(id[:]) != nil
	for _, del := range []struct {
		bkt interface{ Delete([]byte) error }
		key []byte
	}{
		{b.appointments, id[:]},
		{b.trackers, id[:]},
		{b.handOvers, id[:]},
		{b.locatorIdx, locatorKey(loc, id)},
		{b.userAppts, userApptKey(user, id)},
	} {
		if err := del.bkt.Delete(del.key); err != nil {
			return nil, fmt.Errorf("delete appointment %s: %w", id, err)
		}
	}
	b.pending.appointments--
	b.locatorDeleted()
	if hadTracker {
		b.pending.trackers--
	}
	return &deletedAppointment{user: user, blobLen: blobLen}, nil
}

// AppointmentPolicy decides, from the owner's record, the appointment already stored under
// the same UUID (nil if none) and whether it has a tracker, whether an upsert may proceed and
// what the owner's record becomes. It must be pure: it may run more than once.
type AppointmentPolicy func(user UserInfo, prev *Appointment, triggered bool) (UserInfo, error)

// UpsertAppointment inserts or replaces the appointment with a's UUID and updates its owner's
// record in one transaction shared with concurrent writers (a group commit). It reads the owner
// (ErrUserNotFound if not registered), the appointment already stored under that UUID (nil if
// none) and whether it has a tracker, then calls fn. If fn returns nil, the UserInfo it returns,
// the appointment and its index entries are written and that UserInfo is returned. fn must be
// pure, as it may run more than once; its error aborts everything and is returned unchanged.
// a must not be modified until UpsertAppointment returns.
func (s *Store) UpsertAppointment(a *Appointment, fn func(user UserInfo, prev *Appointment, triggered bool) (UserInfo, error)) (UserInfo, error) {
	// A nil policy would panic in the group commit's goroutine, stopping every write.
	if a == nil || fn == nil {
		return UserInfo{}, errors.New("upsert appointment: nil appointment or policy")
	}
	record := encodeAppointment(a)
	var out UserInfo
	err := s.batch(func(b *buckets) error {
		var err error
		out, err = upsertAppointment(b, a, record, fn, nil)
		return err
	})
	if err != nil {
		return UserInfo{}, err
	}
	return out, nil
}

// AppointmentUpsert is one item of UpsertAppointments.
type AppointmentUpsert struct {
	Appointment *Appointment
	Policy      AppointmentPolicy
	// HandOver, if set, is called inside the transaction once Policy accepted the item; a
	// non-nil result is queued for the appointment in the same transaction (replacing any
	// queued one), so the appointment is never durable without its pending hand-over. nil
	// leaves the queue as it is. It may run more than once.
	HandOver func() *HandOver
}

// UpsertResult is the outcome of one AppointmentUpsert: the owner's new record, or Err (the
// policy's error unchanged, or one wrapping ErrUserNotFound) with nothing written for it.
type UpsertResult struct {
	User UserInfo
	Err  error
	// Queued: the store queued a hand-over the item's HandOver did not give, having found its
	// dispute mined itself (PostgreSQL: in a block the leading instance processed).
	Queued bool
}

// errNoneAccepted turns a batch whose items were all refused into a refusal, so the group
// commit does not count it as a write.
var errNoneAccepted = errors.New("upsert appointments: every item refused")

// UpsertAppointments applies each item as UpsertAppointment would, in order, inside ONE
// transaction of the group commit (one fsync for the lot). Each item sees what the items
// before it wrote: its owner's slots, and an earlier item with the same UUID as prev. A
// refused item fails alone; the error return is for store failures, which write nothing.
// The appointments must not be modified until UpsertAppointments returns.
func (s *Store) UpsertAppointments(items []AppointmentUpsert) ([]UpsertResult, error) {
	records := make([][]byte, len(items))
	for i, it := range items {
		if it.Appointment == nil || it.Policy == nil {
			return nil, fmt.Errorf("upsert appointments: item %d has no appointment or policy", i)
		}
		records[i] = encodeAppointment(it.Appointment)
	}
	results := make([]UpsertResult, len(items))
	if len(items) == 0 {
		return results, nil
	}
	err := s.batch(func(b *buckets) error {
		accepted := false
		for i, it := range items {
			user, err := upsertAppointment(b, it.Appointment, records[i], it.Policy, it.HandOver)
			if r, ok := errors.AsType[refusal](err); ok {
				results[i] = UpsertResult{Err: r.err}
				continue
			}
			if err != nil {
				return err
			}
			results[i] = UpsertResult{User: user}
			accepted = true
		}
		if !accepted {
			return refusal{errNoneAccepted}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNoneAccepted) {
		return nil, err
	}
	return results, nil
}

// upsertAppointment is one upsert inside a write transaction; fn's error and an unknown owner
// come back as refusals, before anything is written. handOver may be nil.
func upsertAppointment(b *buckets, a *Appointment, record []byte, fn AppointmentPolicy, handOver func() *HandOver) (UserInfo, error) {
	id := a.UUID()
	user, ok, err := getUser(b, a.UserID)
	if err != nil {
		return UserInfo{}, fmt.Errorf("upsert appointment %s: %w", id, err)
	}
	if !ok {
		return UserInfo{}, refusal{fmt.Errorf("upsert appointment %s: %w", id, ErrUserNotFound)}
	}
	// One lookup serves the policy and the record count (putAppointmentRecordKnown).
	var prev *Appointment
	if v := b.appointments.Get(id[:]); v != nil {
		if prev, err = decodeAppointment(v); err != nil {
			return UserInfo{}, fmt.Errorf("upsert appointment: appointment %s: %w", id, err)
		}
	}
	triggered := b.trackers.Get(id[:]) != nil
	next, err := fn(user, prev, triggered)
	if err != nil {
		return UserInfo{}, refusal{err}
	}
	if err := putUser(b, a.UserID, user, true, next); err != nil {
		return UserInfo{}, fmt.Errorf("upsert appointment %s: store user: %w", id, err)
	}
	if err := putAppointmentRecordKnown(b, id, record, prev == nil); err != nil {
		return UserInfo{}, fmt.Errorf("upsert appointment %s: %w", id, err)
	}
	b.addLocator(a.Locator) // before the put: see locfilter.go
	if err := b.locatorIdx.Put(locatorKey(a.Locator, id), []byte{}); err != nil {
		return UserInfo{}, fmt.Errorf("upsert appointment %s: %w", id, err)
	}
	if err := b.userAppts.Put(userApptKey(a.UserID, id), []byte{}); err != nil {
		return UserInfo{}, fmt.Errorf("upsert appointment %s: %w", id, err)
	}
	if handOver != nil {
		if h := handOver(); h != nil {
			if err := b.handOvers.Put(id[:], encodeHandOver(h)); err != nil {
				return UserInfo{}, fmt.Errorf("upsert appointment %s: queue hand-over: %w", id, err)
			}
		}
	}
	return next, nil
}

// Appointment returns the appointment with that UUID, or ErrNotFound.
func (s *Store) Appointment(id teos.UUID) (*Appointment, error) {
	var a *Appointment
	err := s.view(func(b *buckets) (err error) {
		a, err = getAppointment(b, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("appointment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load appointment: %w", err)
	}
	return a, nil
}

// Tracker returns the tracker with that UUID, or ErrNotFound.
func (s *Store) Tracker(id teos.UUID) (*Tracker, error) {
	var t *Tracker
	err := s.view(func(b *buckets) (err error) {
		t, err = getTracker(b, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load tracker: %w", err)
	}
	if t == nil {
		return nil, fmt.Errorf("tracker %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// scanLocator calls fn for every appointment in the locator index under loc, starting at the
// cursor position k (the result of a Seek to loc or earlier), and returns the first key past them.
func scanLocator(b *buckets, c interface{ Next() ([]byte, []byte) }, k []byte, loc teos.Locator, fn func(teos.UUID, *Appointment) error) ([]byte, error) {
	for ; k != nil && bytes.HasPrefix(k, loc[:]); k, _ = c.Next() {
		id, a, err := locatorEntry(b, k)
		if err != nil {
			return nil, err
		}
		if err := fn(id, a); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// locatorEntry reads the appointment a locator index key k names.
func locatorEntry(b *buckets, k []byte) (teos.UUID, *Appointment, error) {
	if len(k) != teos.LocatorLen+teos.UUIDLen {
		return teos.UUID{}, nil, fmt.Errorf("%w: locator_idx key is %d bytes", ErrCorrupt, len(k))
	}
	id := teos.UUID(k[teos.LocatorLen:])
	a, err := getAppointment(b, id)
	if errors.Is(err, ErrNotFound) {
		return id, nil, fmt.Errorf("%w: index entry for missing appointment %s", ErrCorrupt, id)
	}
	if err != nil {
		return id, nil, err
	}
	return id, a, nil
}

// AppointmentsByLocator returns every user's appointment for loc, ordered by UUID.
func (s *Store) AppointmentsByLocator(loc teos.Locator) ([]*Appointment, error) {
	var out []*Appointment
	err := s.view(func(b *buckets) error {
		out = nil
		if !b.filters.mayContain(&loc) {
			return nil
		}
		c := b.locatorIdx.Cursor()
		k, _ := c.Seek(loc[:])
		_, err := scanLocator(b, c, k, loc, func(_ teos.UUID, a *Appointment) error {
			out = append(out, a)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("appointments for locator %s: %w", loc, err)
	}
	return out, nil
}

// AppointmentsByLocators returns the stored appointments (all users) whose locator is in locs,
// grouped by locator; locators without appointments are absent from the map. The query is
// sorted and answered by one forward cursor pass over the locator index, so a block's worth
// of misses costs little more than the seeks.
//
// A record that cannot be read is skipped, not allowed to hide the block's other matches:
// the error then wraps ErrCorrupt and names it, and the map still holds every readable match
// (a caller that failed the block on it would retry it for ever and watch no later block).
func (s *Store) AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*Appointment, error) {
	out := make(map[teos.Locator][]*Appointment)
	var unreadable []error
	err := s.view(func(b *buckets) error {
		clear(out)
		unreadable = nil
		sorted := b.filters.maybeStored(locs) // in the transaction: see locfilter.go
		slices.SortFunc(sorted, func(x, y teos.Locator) int { return bytes.Compare(x[:], y[:]) })
		sorted = slices.Compact(sorted)
		c := b.locatorIdx.Cursor()
		var k []byte
		for i, loc := range sorted {
			// Seek only when the cursor is behind loc; if it is already past loc, loc has no entries.
			if i == 0 || bytes.Compare(k, loc[:]) < 0 {
				k, _ = c.Seek(loc[:])
			}
			if k == nil {
				break // past the last key: no later locator can match
			}
			for ; k != nil && bytes.HasPrefix(k, loc[:]); k, _ = c.Next() {
				_, a, err := locatorEntry(b, k)
				if errors.Is(err, ErrCorrupt) {
					unreadable = append(unreadable, err)
					continue
				}
				if err != nil {
					return err
				}
				out[loc] = append(out[loc], a)
			}
			if k == nil {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("appointments for %d locators: %w", len(locs), err)
	}
	if len(unreadable) > 0 {
		return out, fmt.Errorf("appointments for %d locators: %d unreadable, skipped: %w", len(locs), len(unreadable), errors.Join(unreadable...))
	}
	return out, nil
}

// DeleteAppointments deletes the appointments with these UUIDs, with their trackers and index
// entries, in one transaction. With refund, each owner gets teos.Slots(len(blob)) slots back
// (saturating). UUIDs that are not stored are skipped.
func (s *Store) DeleteAppointments(ids []teos.UUID, refund bool) error {
	defer s.filters.maybeRebuild()
	err := s.update(func(b *buckets) error { return deleteAppointments(b, ids, refund) })
	if err != nil {
		return fmt.Errorf("delete %d appointments: %w", len(ids), err)
	}
	return nil
}

func deleteAppointments(b *buckets, ids []teos.UUID, refund bool) error {
	for _, id := range ids {
		d, err := deleteAppointment(b, id)
		if err != nil {
			return err
		}
		if d == nil || !refund {
			continue
		}
		user, ok, err := getUser(b, d.user)
		if err != nil {
			return err
		}
		if !ok {
			continue // nobody to refund
		}
		next := user
		next.AvailableSlots = addSaturating(user.AvailableSlots, teos.Slots(d.blobLen))
		if err := putUser(b, d.user, user, true, next); err != nil {
			return fmt.Errorf("refund user %s: %w", d.user, err)
		}
	}
	return nil
}

func addSaturating(a, b uint32) uint32 {
	if a > ^uint32(0)-b {
		return ^uint32(0)
	}
	return a + b
}

// PutTracker stores t, replacing any tracker with its UUID. The appointment must exist,
// else ErrNotFound.
func (s *Store) PutTracker(t *Tracker) error {
	if t == nil {
		return errors.New("put tracker: nil tracker")
	}
	record := encodeTracker(t)
	err := s.update(func(b *buckets) error {
		if b.appointments.Get(t.UUID[:]) == nil {
			return fmt.Errorf("appointment %s: %w", t.UUID, ErrNotFound)
		}
		return putTrackerRecord(b, t.UUID, record)
	})
	if err != nil {
		return fmt.Errorf("put tracker %s: %w", t.UUID, err)
	}
	return nil
}

// UnreadableTracker is a stored tracker record that cannot be decoded. The listings skip it,
// so one damaged record does not stop every block; the caller logs it.
type UnreadableTracker struct {
	UUID teos.UUID // as far as the key holds one
	Err  error
}

// Trackers returns every readable tracker, ordered by UUID; unreadable records are skipped
// (TrackersChecked lists them).
func (s *Store) Trackers() ([]*Tracker, error) {
	out, _, err := s.TrackersChecked()
	return out, err
}

// TrackersChecked returns every readable tracker, ordered by UUID, and the records it skipped.
func (s *Store) TrackersChecked() ([]*Tracker, []UnreadableTracker, error) {
	var (
		out []*Tracker
		bad []UnreadableTracker
	)
	err := s.view(func(b *buckets) error {
		var err error
		out, bad, err = readTrackers(b.trackers, decodeTracker)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list trackers: %w", err)
	}
	return out, bad, nil
}

// readTrackers decodes every record of bkt (nil: none) with decode, in key order, setting
// apart the records it cannot read.
func readTrackers(bkt *bolt.Bucket, decode func(teos.UUID, []byte) (*Tracker, error)) ([]*Tracker, []UnreadableTracker, error) {
	var (
		out []*Tracker
		bad []UnreadableTracker
	)
	if bkt == nil {
		return nil, nil, nil
	}
	err := bkt.ForEach(func(k, v []byte) error {
		var id teos.UUID
		copy(id[:], k)
		if len(k) != teos.UUIDLen {
			bad = append(bad, UnreadableTracker{id, fmt.Errorf("%w: tracker key is %d bytes", ErrCorrupt, len(k))})
			return nil
		}
		t, err := decode(id, v)
		if err != nil {
			bad = append(bad, UnreadableTracker{id, fmt.Errorf("tracker %s: %w", id, err)})
			return nil
		}
		out = append(out, t)
		return nil
	})
	return out, bad, err
}

// Counts returns the number of users, of appointments without a tracker and of trackers. It
// reads the totals the write transactions keep in the meta bucket, so it costs one lookup.
func (s *Store) Counts() (users, watcherAppointments, trackers int, err error) {
	err = s.view(func(b *buckets) error {
		c, err := getCounts(b.meta)
		if err != nil {
			return err
		}
		users, watcherAppointments, trackers = int(c.users), int(c.appointments-c.trackers), int(c.trackers)
		return nil
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count records: %w", err)
	}
	return users, watcherAppointments, trackers, nil
}

// ForEachAppointment calls fn for every appointment with its tracker (nil if none), in UUID
// order, or only for loc's appointments when loc is not nil. fn runs outside any read
// transaction, so a slow fn holds up no writer: the whole-store walk reads walkChunk records
// per transaction (walkBucket), and each record with its tracker as of one moment. A record
// stored for the whole walk is visited exactly once; one added, deleted or triggered during
// it may or may not be, or be seen before its change. rust-teos's get_all_appointments gives
// no more: it reads the appointments and then the trackers in two separate queries.
//
// fn gets copies it may keep. An error from fn stops the walk and is returned unchanged. A
// record that cannot be read is skipped: the walk goes on and ends with an
// *UnreadableRecords (errors.Is ErrCorrupt) naming it, every readable record visited.
func (s *Store) ForEachAppointment(loc *teos.Locator, fn func(a *Appointment, t *Tracker) error) error {
	type entry struct {
		a *Appointment
		t *Tracker
	}
	var (
		chunk      []entry
		unreadable UnreadableRecords
	)
	// visit reads one appointment and its tracker into chunk, setting unreadable ones apart.
	visit := func(b *buckets, id teos.UUID, a *Appointment, err error) error {
		var t *Tracker
		if err == nil {
			t, err = getTracker(b, id)
		}
		if err != nil {
			if skippable(err) {
				unreadable.add(err)
				return nil
			}
			return err
		}
		chunk = append(chunk, entry{a, t})
		return nil
	}
	callFn := func() error {
		for i, e := range chunk {
			chunk[i] = entry{}
			if err := fn(e.a, e.t); err != nil {
				return fnError{err}
			}
		}
		chunk = chunk[:0]
		return nil
	}
	var err error
	if loc != nil {
		// One locator's appointments (one per user at most) are read in one transaction.
		err = s.view(func(b *buckets) error {
			chunk, unreadable = chunk[:0], UnreadableRecords{}
			c := b.locatorIdx.Cursor()
			for k, _ := c.Seek(loc[:]); k != nil && bytes.HasPrefix(k, loc[:]); k, _ = c.Next() {
				id, a, err := locatorEntry(b, k)
				if err := visit(b, id, a, err); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			err = callFn()
		}
	} else {
		err = s.walkBucket(func(b *buckets) *bolt.Bucket { return b.appointments }, func(b *buckets, k, v []byte) error {
			if len(k) != teos.UUIDLen {
				unreadable.add(fmt.Errorf("%w: appointment key %x is %d bytes", ErrCorrupt, k, len(k)))
				return nil
			}
			id := teos.UUID(k)
			a, err := decodeAppointment(v)
			if err != nil {
				err = fmt.Errorf("appointment %s: %w", id, err)
			}
			return visit(b, id, a, err)
		}, callFn)
	}
	if fe, ok := errors.AsType[fnError](err); ok {
		return fe.err
	}
	if err != nil {
		return fmt.Errorf("walk appointments: %w", err)
	}
	if err := unreadable.orNil(); err != nil {
		return fmt.Errorf("walk appointments: %w", err)
	}
	return nil
}

// fnError carries a caller's callback error through a walk, to be returned unchanged.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
