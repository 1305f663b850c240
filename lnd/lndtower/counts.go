package lndtower

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// keyCounts, in the front end's bucket next to its nested buckets, holds how many sessions
// and state updates are stored: sessions(8) || updates(8), big-endian. The writes that add or
// remove either change it in their own transaction, so reading it (metrics, get_tower_info)
// is one Get rather than a walk of both buckets, and it is never out of step with them.
var keyCounts = []byte("counts")

// tally is what one write adds to (or, negative, removes from) the counts.
type tally struct{ sessions, updates int64 }

// storedCounts reads the counts of b, the front end's bucket (nil: nothing stored yet). A file
// written before the counts were kept has none, and a record that cannot be read is derived
// data not worth refusing clients for: then the buckets are walked, as they are, and the
// next counted write stores the result.
func storedCounts(b *bolt.Bucket) (sessions, updates uint64) {
	if b == nil {
		return 0, 0
	}
	if v := b.Get(keyCounts); len(v) == 16 {
		return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	return walkCounts(b)
}

// walkCounts counts the records with cursors: Bucket.Stats would miss the changes of the
// write transaction it runs in.
func walkCounts(b *bolt.Bucket) (sessions, updates uint64) {
	count := func(bk *bolt.Bucket) (n uint64) {
		if bk != nil {
			c := bk.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				n++
			}
		}
		return n
	}
	return count(sub(b, bktSessions)), count(sub(b, bktUpdates))
}

// countedUpdate is update for the writes that add or remove sessions or state updates: fn
// says what it changed in t, and the counts are stored with its changes.
func (d *DB) countedUpdate(fn func(t *tally, sessions, updates, hints *bolt.Bucket) error) error {
	return d.s.ExtUpdate(extName, func(b *bolt.Bucket) error {
		s, u := storedCounts(b) // before fn changes the buckets
		var t tally
		err := inBuckets(b, func(sessions, updates, hints, _ *bolt.Bucket) error { return fn(&t, sessions, updates, hints) })
		if err != nil {
			return err
		}
		if v := b.Get(keyCounts); t == (tally{}) && len(v) == 16 {
			return nil
		}
		ns, nu := int64(s)+t.sessions, int64(u)+t.updates
		if ns < 0 || nu < 0 { // a record out of step with the buckets (never written so)
			d.log.Warn("lnd session counts out of step with the records: counted again", "sessions", ns, "updates", nu)
			ws, wu := walkCounts(b)
			ns, nu = int64(ws), int64(wu)
		}
		v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(ns)), uint64(nu))
		return b.Put(keyCounts, v)
	})
}
