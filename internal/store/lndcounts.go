package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The lnd front end's record counts are read on every metrics scrape and tower info request,
// so they are kept under keyLndCounts, written in the same transaction as every session and
// update write, instead of walking the buckets (bucket stats visit every page) per read.

// lndCounts are the stored totals, or a transaction's pending changes to them.
type lndCounts struct{ sessions, updates int64 }

const lndCountsLen = 2 * 8

func encodeLndCounts(c lndCounts) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, lndCountsLen), uint64(c.sessions))
	return binary.BigEndian.AppendUint64(v, uint64(c.updates))
}

// storedLndCounts returns the stored totals; ok is false if they are missing, malformed or
// disagree with what can be checked cheaply (plausible). Files written before the totals
// existed have none, and get them by a walk (recount).
func (b *lndBuckets) storedLndCounts() (c lndCounts, ok bool) {
	if b.root == nil {
		return lndCounts{}, true // nothing was ever written
	}
	c, ok = b.rawLndCounts()
	return c, ok && b.plausible(c)
}

func (b *lndBuckets) rawLndCounts() (c lndCounts, ok bool) {
	v := b.root.Get(keyLndCounts)
	if len(v) != lndCountsLen {
		return lndCounts{}, false
	}
	return lndCounts{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))}, true
}

// plausible: no total is negative, and a total is zero exactly when its bucket is empty.
func (b *lndBuckets) plausible(c lndCounts) bool {
	if c.sessions < 0 || c.updates < 0 || (c.sessions == 0 && c.updates > 0) {
		return false
	}
	for _, x := range []struct {
		bkt *bolt.Bucket
		n   int64
	}{{b.sessions, c.sessions}, {b.updates, c.updates}} {
		empty := x.bkt == nil
		if !empty {
			k, _ := x.bkt.Cursor().First()
			empty = k == nil
		}
		if empty != (x.n == 0) {
			return false
		}
	}
	return true
}

// flushCounts adds the transaction's changes to the stored totals, or recounts them if they
// are missing or wrong: the counts only feed metrics and tower info, so a damaged key is
// repaired rather than refusing writes. It returns the totals as stored.
func (b *lndBuckets) flushCounts() (lndCounts, error) {
	c, ok := b.rawLndCounts()
	if ok && b.delta == (lndCounts{}) && b.plausible(c) {
		return c, nil // a tracker write, or nothing stored
	}
	c.sessions += b.delta.sessions
	c.updates += b.delta.updates
	if !ok || !b.plausible(c) {
		// countKeys sees this transaction's own changes.
		c = lndCounts{countKeys(b.sessions), countKeys(b.updates)}
	}
	if err := b.root.Put(keyLndCounts, encodeLndCounts(c)); err != nil {
		return lndCounts{}, fmt.Errorf("store lnd counts: %w", err)
	}
	b.delta = lndCounts{}
	return c, nil
}

// LndCounts reads the stored totals; if they are missing or wrong (a file from before they
// were kept), it recounts and stores them once, in a write transaction.
func (s *Store) LndCounts() (sessions, updates int, err error) {
	var (
		c  lndCounts
		ok bool
	)
	err = s.lndView(func(b lndBuckets) error {
		c, ok = b.storedLndCounts()
		return nil
	})
	if err == nil && !ok {
		c, err = s.lndUpdateCounted(func(*lndBuckets) error { return nil })
	}
	if err != nil {
		return 0, 0, fmt.Errorf("count lnd records: %w", err)
	}
	return int(c.sessions), int(c.updates), nil
}
