package store

import (
	"fmt"
	"slices"

	"github.com/teos-go/teos/pkg/teos"
)

// Changes are tracker and appointment writes made together: the responder's for one block,
// the watcher's for one run of hand-overs. ApplyChanges commits them in one transaction, one
// fsync, however many trackers a block touches.
type Changes struct {
	// Trackers are stored, each replacing the one with its UUID. A tracker whose appointment
	// is gone (its user was deleted meanwhile) is skipped: there is nothing left to track.
	Trackers []*Tracker
	// Completed appointments are deleted with their trackers, refunding their owners' slots.
	Completed []teos.UUID
	// Dropped appointments are deleted with their trackers, without refund.
	Dropped []teos.UUID
	// Invalid appointments are deleted with their trackers, refunding their owners' slots:
	// those found invalid in a block (a blob that does not decrypt, a penalty bitcoind
	// rejects), as rust-teos v0.2 refunds them. A late appointment found invalid when it is
	// added keeps its slots (Dropped), as there too.
	Invalid []teos.UUID
	// HandedOver removes these UUIDs' queued hand-overs.
	HandedOver []teos.UUID
	// Untracked appointments lose their tracker but stay stored, watched again as if never
	// triggered; slots are unchanged. UUIDs without a tracker are skipped.
	Untracked []teos.UUID
	// Basis, if set, holds per UUID what the decisions about it were made on. Every change for
	// a UUID whose Basis no longer matches the store is skipped: the appointment was updated,
	// or deleted and added again, after it was read (an update of a breached appointment
	// queues its own hand-over, which then decides). UUIDs without a Basis are applied as is.
	Basis map[teos.UUID]Basis
}

// Basis is what a decision about one UUID was made on; zero fields are not checked.
type Basis struct {
	// UserSignature is the examined appointment's: it signs the appointment's content, so a
	// stored appointment with another signature is another version.
	UserSignature string
	// Tracked: the decision was made on the UUID's tracker, which must still be stored. Only
	// the chain goroutine writes trackers, and deleting an appointment deletes its tracker, so
	// a tracker still stored is the one read.
	Tracked bool
}

// matches reports whether an appointment stored with signature sig (stored false if none),
// tracked or not, is still the one b was made on.
func (b Basis) matches(stored bool, sig string, tracked bool) bool {
	if !stored {
		return false
	}
	if b.UserSignature != "" && sig != b.UserSignature {
		return false
	}
	return !b.Tracked || tracked
}

// Stale returns the UUIDs of c.Basis that lookup says no longer match; lookup reports whether
// the appointment is stored, its signature (only needed if needSig) and whether it has a
// tracker.
func (c *Changes) Stale(lookup func(id teos.UUID, needSig bool) (stored bool, sig string, tracked bool, err error)) (map[teos.UUID]bool, error) {
	var stale map[teos.UUID]bool
	for id, b := range c.Basis {
		stored, sig, tracked, err := lookup(id, b.UserSignature != "")
		if err != nil {
			return nil, err
		}
		if !b.matches(stored, sig, tracked) {
			if stale == nil {
				stale = make(map[teos.UUID]bool)
			}
			stale[id] = true
		}
	}
	return stale, nil
}

// Without returns the ids not in skip (ids itself if skip is empty).
func Without(ids []teos.UUID, skip map[teos.UUID]bool) []teos.UUID {
	if len(skip) == 0 {
		return ids
	}
	out := make([]teos.UUID, 0, len(ids))
	for _, id := range ids {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out
}

// TrackersGone lists every UUID whose tracker c deletes (Completed, Dropped, Invalid,
// Untracked): what a store without appointments behind its trackers (the lnd front end's)
// deletes, so a new kind of deletion cannot be forgotten there.
func (c *Changes) TrackersGone() []teos.UUID {
	return slices.Concat(c.Completed, c.Dropped, c.Invalid, c.Untracked)
}

// Empty reports whether c writes nothing.
func (c *Changes) Empty() bool {
	return len(c.Trackers)+len(c.Completed)+len(c.Dropped)+len(c.Invalid)+len(c.HandedOver)+len(c.Untracked) == 0
}

// ApplyChanges writes c in one transaction, in the order of its fields: trackers first, so a
// UUID also listed for deletion ends up deleted. The UUIDs whose Basis no longer matches are
// found first, in the same transaction, and left alone. An empty c costs nothing.
func (s *Store) ApplyChanges(c *Changes) error {
	if c == nil || c.Empty() {
		return nil
	}
	records := make([][]byte, len(c.Trackers))
	for i, t := range c.Trackers {
		if t == nil {
			return fmt.Errorf("apply changes: tracker %d is nil", i)
		}
		records[i] = encodeTracker(t)
	}
	err := s.update(func(b *buckets) error {
		stale, err := c.Stale(func(id teos.UUID, needSig bool) (bool, string, bool, error) {
			v := b.appointments.Get(id[:])
			if v == nil {
				return false, "", false, nil
			}
			tracked := b.trackers.Get(id[:]) != nil
			if !needSig {
				return true, "", tracked, nil
			}
			a, err := decodeAppointment(v)
			if err != nil {
				return false, "", false, nil // not the record the decision was made on
			}
			return true, a.UserSignature, tracked, nil
		})
		if err != nil {
			return err
		}
		for i, t := range c.Trackers {
			if stale[t.UUID] || b.appointments.Get(t.UUID[:]) == nil {
				continue
			}
			if err := putTrackerRecord(b, t.UUID, records[i]); err != nil {
				return fmt.Errorf("put tracker %s: %w", t.UUID, err)
			}
		}
		if err := deleteAppointments(b, Without(c.Completed, stale), true); err != nil {
			return err
		}
		if err := deleteAppointments(b, Without(c.Dropped, stale), false); err != nil {
			return err
		}
		if err := deleteAppointments(b, Without(c.Invalid, stale), true); err != nil {
			return err
		}
		for _, id := range Without(c.HandedOver, stale) {
			if err := b.handOvers.Delete(id[:]); err != nil {
				return fmt.Errorf("remove hand-over %s: %w", id, err)
			}
		}
		if err := untrack(b, Without(c.Untracked, stale)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply %d trackers, %d completed, %d dropped, %d invalid, %d handed over, %d untracked: %w",
			len(c.Trackers), len(c.Completed), len(c.Dropped), len(c.Invalid), len(c.HandedOver), len(c.Untracked), err)
	}
	return nil
}

// untrack deletes these UUIDs' trackers, keeping their appointments and index entries, so the
// watcher finds them again like appointments never triggered.
func untrack(b *buckets, ids []teos.UUID) error {
	for _, id := range ids {
		if b.trackers.Get(id[:]) == nil {
			continue
		}
		if err := b.trackers.Delete(id[:]); err != nil {
			return fmt.Errorf("untrack %s: %w", id, err)
		}
		b.pending.trackers--
	}
	return nil
}
