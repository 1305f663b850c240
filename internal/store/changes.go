package store

import (
	"fmt"

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
	// HandedOver removes these UUIDs' queued hand-overs.
	HandedOver []teos.UUID
	// Untracked appointments lose their tracker but stay stored, watched again as if never
	// triggered; slots are unchanged. UUIDs without a tracker are skipped.
	Untracked []teos.UUID
}

// Empty reports whether c writes nothing.
func (c *Changes) Empty() bool {
	return len(c.Trackers)+len(c.Completed)+len(c.Dropped)+len(c.HandedOver)+len(c.Untracked) == 0
}

// ApplyChanges writes c in one transaction, in the order of its fields: trackers first, so a
// UUID also listed for deletion ends up deleted. An empty c costs nothing.
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
		for i, t := range c.Trackers {
			if b.appointments.Get(t.UUID[:]) == nil {
				continue
			}
			if err := putTrackerRecord(b, t.UUID, records[i]); err != nil {
				return fmt.Errorf("put tracker %s: %w", t.UUID, err)
			}
		}
		if err := deleteAppointments(b, c.Completed, true); err != nil {
			return err
		}
		if err := deleteAppointments(b, c.Dropped, false); err != nil {
			return err
		}
		for _, id := range c.HandedOver {
			if err := b.handOvers.Delete(id[:]); err != nil {
				return fmt.Errorf("remove hand-over %s: %w", id, err)
			}
		}
		if err := untrack(b, c.Untracked); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply %d trackers, %d completed, %d dropped, %d handed over: %w",
			len(c.Trackers), len(c.Completed), len(c.Dropped), len(c.HandedOver), err)
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
