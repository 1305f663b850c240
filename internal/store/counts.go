package store

import (
	"encoding/binary"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// recordCounts are the totals kept under keyCounts, or a transaction's pending changes to them.
type recordCounts struct {
	users, appointments, trackers int64
}

const countsLen = 3 * 8

func decodeCounts(v []byte) (recordCounts, error) {
	if len(v) != countsLen {
		return recordCounts{}, fmt.Errorf("%w: counts are %d bytes", ErrCorrupt, len(v))
	}
	c := recordCounts{
		users:        int64(binary.BigEndian.Uint64(v)),
		appointments: int64(binary.BigEndian.Uint64(v[8:])),
		trackers:     int64(binary.BigEndian.Uint64(v[16:])),
	}
	if c.users < 0 || c.appointments < 0 || c.trackers < 0 || c.trackers > c.appointments {
		return recordCounts{}, fmt.Errorf("%w: counts %+v", ErrCorrupt, c)
	}
	return c, nil
}

func encodeCounts(c recordCounts) []byte {
	v := make([]byte, 0, countsLen)
	v = binary.BigEndian.AppendUint64(v, uint64(c.users))
	v = binary.BigEndian.AppendUint64(v, uint64(c.appointments))
	return binary.BigEndian.AppendUint64(v, uint64(c.trackers))
}

func getCounts(meta *bolt.Bucket) (recordCounts, error) {
	v := meta.Get(keyCounts)
	if v == nil {
		return recordCounts{}, fmt.Errorf("%w: counts missing", ErrCorrupt)
	}
	return decodeCounts(v)
}

// flushCounts adds the transaction's pending changes to the stored totals: one read and one
// write per transaction, however many records it touched. Callers run it just before commit.
func (b *buckets) flushCounts() error {
	d := b.pending
	if d == (recordCounts{}) {
		return nil
	}
	c, err := getCounts(b.meta)
	if err == nil {
		c.users += d.users
		c.appointments += d.appointments
		c.trackers += d.trackers
	}
	if err != nil || c.users < 0 || c.appointments < 0 || c.trackers < 0 || c.trackers > c.appointments {
		// The totals drifted from the records (a damaged key or a bug): recount them in this
		// transaction rather than refuse writes, since the counts only feed metrics and tower info.
		c = recordCounts{
			users:        countKeys(b.users),
			appointments: countKeys(b.appointments),
			trackers:     countKeys(b.trackers),
		}
	}
	if err := b.meta.Put(keyCounts, encodeCounts(c)); err != nil {
		return fmt.Errorf("store counts: %w", err)
	}
	b.pending = recordCounts{}
	return nil
}

// recountRecords counts the keys page by page (bbolt bucket stats). It walks every page of
// three buckets, so it only runs when a file has no stored counts yet; appointments are
// counted in the locator index, whose small keys fill far fewer pages than the records.
func recountRecords(tx *bolt.Tx) (recordCounts, error) {
	var c recordCounts
	for _, x := range []struct {
		dst  *int64
		name []byte
	}{{&c.users, bktUsers}, {&c.appointments, bktLocatorIdx}, {&c.trackers, bktTrackers}} {
		bkt := tx.Bucket(x.name)
		if bkt == nil {
			return recordCounts{}, fmt.Errorf("%w: %s", ErrUninitialized, x.name)
		}
		*x.dst = int64(bkt.Stats().KeyN)
	}
	return c, nil
}

// storeRecount replaces the stored totals by a full recount (migration from version 1).
func storeRecount(tx *bolt.Tx) error {
	c, err := recountRecords(tx)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bktMeta).Put(keyCounts, encodeCounts(c)); err != nil {
		return fmt.Errorf("store counts: %w", err)
	}
	return nil
}

// The helpers below are the only writers of users, appointments and trackers records; each
// knows whether a record is new or removed and notes it in b.pending.

// putAppointmentRecord stores an appointment record, counting it if the UUID is new.
func putAppointmentRecord(b *buckets, id teos.UUID, record []byte) error {
	return putAppointmentRecordKnown(b, id, record, b.appointments.Get(id[:]) == nil)
}

// putAppointmentRecordKnown is putAppointmentRecord for a caller that has just looked the UUID
// up in this transaction: isNew must say whether it was absent.
func putAppointmentRecordKnown(b *buckets, id teos.UUID, record []byte, isNew bool) error {
	if err := b.appointments.Put(id[:], record); err != nil {
		return err
	}
	if isNew {
		b.pending.appointments++
	}
	return nil
}

// putTrackerRecord stores a tracker record, counting it if the UUID had none.
func putTrackerRecord(b *buckets, id teos.UUID, record []byte) error {
	isNew := b.trackers.Get(id[:]) == nil
	if err := b.trackers.Put(id[:], record); err != nil {
		return err
	}
	if isNew {
		b.pending.trackers++
	}
	return nil
}

// deleteUserRecord removes a user's record (not its expiry entry or appointments).
func deleteUserRecord(b *buckets, id teos.UserID) error {
	if b.users.Get(id[:]) == nil {
		return nil
	}
	if err := b.users.Delete(id[:]); err != nil {
		return err
	}
	b.pending.users--
	return nil
}

// countKeys counts a bucket's keys one by one. Unlike bucket stats it sees the changes of the
// running write transaction; it is slow, and only repairs damaged totals.
func countKeys(bkt *bolt.Bucket) int64 {
	var n int64
	c := bkt.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}
