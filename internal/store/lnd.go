package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/pkg/teos"
)

// The records of the lnd front end (lnd's watchtower protocol, the lnd/ module): its clients'
// sessions and state updates, and the justice transactions its own responder tracks. The store
// keeps session and update records opaque (lnd's encodings, which the main module does not
// import); the front end decodes them and runs lnd's checks inside the callbacks, in the
// store's transaction.

// LndSessionIDLen and LndHintLen are the sizes of an lnd session id (the client's session
// key) and of a breach hint (SHA256(txid)[:16]).
const (
	LndSessionIDLen = 33
	LndHintLen      = 16
)

// LndSessionID names an lnd client session; LndHint is a state update's breach hint.
type (
	LndSessionID [LndSessionIDLen]byte
	LndHint      [LndHintLen]byte
)

// LndMatch is a stored state update whose hint was asked for, with its session's record.
type LndMatch struct {
	Session LndSessionID
	Hint    LndHint
	// SessionRecord and UpdateRecord are the records as stored.
	SessionRecord, UpdateRecord []byte
}

// LndRecords is the lnd front end's storage; both engines implement it, and storetest pins it.
type LndRecords interface {
	// LndSession returns the session's record; ok is false if there is none.
	LndSession(id LndSessionID) (rec []byte, ok bool, err error)
	// LndPutSession stores rec as the session's record. check sees the stored record (nil if
	// none) in the same transaction; an error from it stores nothing and is returned as is.
	LndPutSession(id LndSessionID, rec []byte, check func(prev []byte) error) error
	// LndAddUpdate stores a state update of the session: fn gets the session's record (nil if
	// none) and returns the session's new record and the update's, stored under (hint, id) in
	// the same transaction, replacing an update with that key. An error from fn stores nothing
	// and is returned as is.
	LndAddUpdate(id LndSessionID, hint LndHint, fn func(session []byte) (newSession, update []byte, err error)) error
	// LndDeleteSession deletes the session and all its updates; found is false if there was
	// no such session (nothing changes then).
	LndDeleteSession(id LndSessionID) (found bool, err error)
	// LndMatches returns the stored updates whose hint is among hints, in hints' order, with
	// their sessions' records.
	LndMatches(hints []LndHint) ([]LndMatch, error)
	// LndCounts returns how many sessions and state updates are stored.
	LndCounts() (sessions, updates int, err error)

	// The front end's trackers, apart from the tower's (no appointment behind them).
	LndPutTracker(t *Tracker) error
	// LndTracker returns the tracker, or ErrNotFound.
	LndTracker(id teos.UUID) (*Tracker, error)
	// LndTrackers returns every readable tracker, ordered by UUID; unreadable records are
	// skipped, so one damaged record does not stop every block (LndTrackersChecked lists them).
	LndTrackers() ([]*Tracker, error)
	// LndTrackersChecked is LndTrackers plus the records it skipped.
	LndTrackersChecked() ([]*Tracker, []UnreadableTracker, error)
	// LndApplyChanges stores c.Trackers and deletes c.TrackersGone(), in one
	// transaction; hand-overs are not the front end's and are ignored, and so is c.Basis
	// (Store.LndApplyChanges says why none is needed).
	LndApplyChanges(c *Changes) error
	// LndDeleteTrackers deletes those trackers; unknown ids are ignored.
	LndDeleteTrackers(ids []teos.UUID) error
}

var _ LndRecords = (*Store)(nil)

// The bbolt layout: the extension bucket ext/lnd (see ext.go), which the front end created
// before the store knew its records, with four nested buckets.
const lndExtName = "lnd"

var (
	// sessions: session_id(33) -> session record.
	bktLndSessions = []byte("sessions")
	// updates: hint(16) || session_id(33) -> update record; the hint first, so a block's
	// hints are looked up with one seek each.
	bktLndUpdates = []byte("updates")
	// session_hints: session_id(33) || hint(16) -> empty; a session's updates, for deletion.
	bktLndSessionHints = []byte("session_hints")
	// trackers: uuid(20) -> tracker record (encodeLndTracker).
	bktLndTrackers = []byte("trackers")
	// keyLndCounts, a key of the root bucket: sessions(8) || updates(8), kept by every write
	// (lndcounts.go).
	keyLndCounts = []byte("counts")
)

type lndBuckets struct {
	sessions, updates, hints, trackers *bolt.Bucket
	root                               *bolt.Bucket
	// delta is what the transaction added to the counts so far (write transactions only).
	delta lndCounts
}

func (s *Store) lndUpdate(fn func(b *lndBuckets) error) error {
	_, err := s.lndUpdateCounted(fn)
	return err
}

// lndUpdateCounted runs fn in a write transaction and stores the counts it changed, in the
// same transaction; it returns the counts as committed.
func (s *Store) lndUpdateCounted(fn func(b *lndBuckets) error) (c lndCounts, err error) {
	err = s.ExtUpdate(lndExtName, func(root *bolt.Bucket) error {
		var bs [4]*bolt.Bucket
		for i, name := range [][]byte{bktLndSessions, bktLndUpdates, bktLndSessionHints, bktLndTrackers} {
			var err error
			if bs[i], err = root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		b := &lndBuckets{sessions: bs[0], updates: bs[1], hints: bs[2], trackers: bs[3], root: root}
		if err := fn(b); err != nil {
			return err
		}
		c, err = b.flushCounts()
		return err
	})
	return c, err
}

// lndView runs fn on the buckets; any of them is nil while nothing was written there.
func (s *Store) lndView(fn func(b lndBuckets) error) error {
	return s.ExtView(lndExtName, func(root *bolt.Bucket) error {
		sub := func(name []byte) *bolt.Bucket {
			if root == nil {
				return nil
			}
			return root.Bucket(name)
		}
		return fn(lndBuckets{sessions: sub(bktLndSessions), updates: sub(bktLndUpdates), hints: sub(bktLndSessionHints),
			trackers: sub(bktLndTrackers), root: root})
	})
}

func clone(v []byte) []byte {
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// userErr marks an error of a caller's callback, returned unwrapped.
type userErr struct{ err error }

func (u userErr) Error() string { return u.err.Error() }

func unwrapUser(err error, what string) error {
	var u userErr
	if errors.As(err, &u) {
		return u.err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Store) LndSession(id LndSessionID) (rec []byte, ok bool, err error) {
	err = s.lndView(func(b lndBuckets) error {
		if b.sessions != nil {
			rec = clone(b.sessions.Get(id[:]))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("load lnd session %x: %w", id, err)
	}
	return rec, rec != nil, nil
}

func (s *Store) LndPutSession(id LndSessionID, rec []byte, check func(prev []byte) error) error {
	err := s.lndUpdate(func(b *lndBuckets) error {
		prev := b.sessions.Get(id[:])
		if check != nil {
			if err := check(prev); err != nil {
				return userErr{err}
			}
		}
		if prev == nil {
			b.delta.sessions++
		}
		return b.sessions.Put(id[:], clone(rec))
	})
	return unwrapUser(err, fmt.Sprintf("store lnd session %x", id))
}

func (s *Store) LndAddUpdate(id LndSessionID, hint LndHint, fn func(session []byte) (newSession, update []byte, err error)) error {
	if fn == nil {
		return fmt.Errorf("store lnd state update of %x: nil function", id)
	}
	err := s.lndUpdate(func(b *lndBuckets) error {
		prev := b.sessions.Get(id[:])
		sess, upd, err := fn(prev)
		if err != nil {
			return userErr{err}
		}
		if prev == nil {
			b.delta.sessions++
		}
		if err := b.sessions.Put(id[:], clone(sess)); err != nil {
			return err
		}
		key := lndUpdateKey(hint, id)
		if b.updates.Get(key) == nil {
			b.delta.updates++
		}
		if err := b.updates.Put(key, clone(upd)); err != nil {
			return err
		}
		return b.hints.Put(lndSessionHintKey(id, hint), []byte{})
	})
	return unwrapUser(err, fmt.Sprintf("store lnd state update of %x", id))
}

func (s *Store) LndDeleteSession(id LndSessionID) (found bool, err error) {
	err = s.lndUpdate(func(b *lndBuckets) error {
		if b.sessions.Get(id[:]) == nil {
			return nil
		}
		found = true
		b.delta.sessions--
		if err := b.sessions.Delete(id[:]); err != nil {
			return err
		}
		var keys [][]byte
		c := b.hints.Cursor()
		for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
			keys = append(keys, clone(k))
		}
		for _, k := range keys {
			var hint LndHint
			copy(hint[:], k[LndSessionIDLen:])
			uk := lndUpdateKey(hint, id)
			if b.updates.Get(uk) != nil {
				b.delta.updates--
			}
			if err := b.updates.Delete(uk); err != nil {
				return err
			}
			if err := b.hints.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("delete lnd session %x: %w", id, err)
	}
	return found, nil
}

// LndMatches skips an update whose key is malformed; one whose session is gone comes with a
// nil SessionRecord, for the front end to report.
func (s *Store) LndMatches(hints []LndHint) ([]LndMatch, error) {
	var out []LndMatch
	err := s.lndView(func(b lndBuckets) error {
		out = nil
		if b.updates == nil {
			return nil
		}
		c := b.updates.Cursor()
		for _, hint := range hints {
			for k, v := c.Seek(hint[:]); k != nil && bytes.HasPrefix(k, hint[:]); k, v = c.Next() {
				if len(k) != LndHintLen+LndSessionIDLen {
					continue
				}
				m := LndMatch{Hint: hint, UpdateRecord: clone(v)}
				copy(m.Session[:], k[LndHintLen:])
				if b.sessions != nil {
					m.SessionRecord = clone(b.sessions.Get(m.Session[:]))
				}
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query lnd breach hints: %w", err)
	}
	return out, nil
}

func lndUpdateKey(hint LndHint, id LndSessionID) []byte {
	return append(append(make([]byte, 0, LndHintLen+LndSessionIDLen), hint[:]...), id[:]...)
}

func lndSessionHintKey(id LndSessionID, hint LndHint) []byte {
	return append(append(make([]byte, 0, LndHintLen+LndSessionIDLen), id[:]...), hint[:]...)
}

// The tracker record of the front end's bucket (the layout the front end wrote before):
// version(1) height(4) confirmed(1) dispute_txid(32) penalty_txid(32) uvarint-prefixed
// dispute and penalty transactions.
const lndTrackerVersion = 1

func encodeLndTracker(t *Tracker) []byte {
	v := []byte{lndTrackerVersion}
	v = binary.BigEndian.AppendUint32(v, t.Height)
	if t.Confirmed {
		v = append(v, 1)
	} else {
		v = append(v, 0)
	}
	v = append(v, t.DisputeTxID[:]...)
	v = append(v, t.PenaltyTxID[:]...)
	v = binary.AppendUvarint(v, uint64(len(t.DisputeTx)))
	v = append(v, t.DisputeTx...)
	v = binary.AppendUvarint(v, uint64(len(t.PenaltyTx)))
	return append(v, t.PenaltyTx...)
}

func decodeLndTracker(id teos.UUID, v []byte) (*Tracker, error) {
	bad := func(what string) error { return fmt.Errorf("%w: lnd tracker %s: %s", ErrCorrupt, id, what) }
	if len(v) < 1+4+1+64 || v[0] != lndTrackerVersion {
		return nil, bad("short or unknown version")
	}
	t := &Tracker{UUID: id, Height: binary.BigEndian.Uint32(v[1:])}
	switch v[5] {
	case 0:
	case 1:
		t.Confirmed = true
	default:
		return nil, bad("confirmed flag")
	}
	copy(t.DisputeTxID[:], v[6:38])
	copy(t.PenaltyTxID[:], v[38:70])
	rest := v[70:]
	for _, dst := range []*[]byte{&t.DisputeTx, &t.PenaltyTx} {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, bad("transaction length")
		}
		*dst = append([]byte(nil), rest[k:k+int(n)]...)
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		return nil, bad("trailing bytes")
	}
	return t, nil
}

func (s *Store) LndPutTracker(t *Tracker) error {
	if t == nil {
		return errors.New("put lnd tracker: nil tracker")
	}
	v := encodeLndTracker(t)
	if err := s.lndUpdate(func(b *lndBuckets) error { return b.trackers.Put(t.UUID[:], v) }); err != nil {
		return fmt.Errorf("put lnd tracker %s: %w", t.UUID, err)
	}
	return nil
}

func (s *Store) LndTracker(id teos.UUID) (*Tracker, error) {
	var t *Tracker
	err := s.lndView(func(b lndBuckets) error {
		var v []byte
		if b.trackers != nil {
			v = b.trackers.Get(id[:])
		}
		if v == nil {
			return fmt.Errorf("lnd tracker %s: %w", id, ErrNotFound)
		}
		var err error
		t, err = decodeLndTracker(id, v)
		return err
	})
	return t, err
}

func (s *Store) LndTrackers() ([]*Tracker, error) {
	out, _, err := s.LndTrackersChecked()
	return out, err
}

func (s *Store) LndTrackersChecked() ([]*Tracker, []UnreadableTracker, error) {
	var (
		out []*Tracker
		bad []UnreadableTracker
	)
	err := s.lndView(func(b lndBuckets) error {
		var err error
		out, bad, err = readTrackers(b.trackers, decodeLndTracker)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list lnd trackers: %w", err)
	}
	return out, bad, nil
}

// LndApplyChanges needs no Changes.Basis, in either engine. The tower's race (a
// block deletes, by UUID, an appointment its user updated after the block read it) needs a
// record that both a client's request and a block's commit write. Here there is none: lnd
// clients write sessions and state updates only (LndPutSession, LndAddUpdate,
// LndDeleteSession), a block's commit writes trackers only, and untracking or completing a
// tracker deletes nothing else. Only the chain goroutine (lookout, then responder) writes
// trackers, so a tracker a decision was made on is still the one stored at its commit.
// Conformance case LndApplyChangesLeavesClientRecords pins this; a change that made a block
// delete sessions or updates would need a Basis check as ApplyChanges has.
func (s *Store) LndApplyChanges(c *Changes) error {
	if c == nil || len(c.Trackers)+len(c.TrackersGone()) == 0 {
		return nil
	}
	records := make([][]byte, len(c.Trackers))
	for i, t := range c.Trackers {
		if t == nil {
			return fmt.Errorf("apply lnd changes: tracker %d is nil", i)
		}
		records[i] = encodeLndTracker(t)
	}
	err := s.lndUpdate(func(b *lndBuckets) error {
		for i, t := range c.Trackers {
			if err := b.trackers.Put(t.UUID[:], records[i]); err != nil {
				return err
			}
		}
		// No appointment behind these trackers: untracking one just deletes it.
		for _, id := range c.TrackersGone() {
			if err := b.trackers.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply lnd changes: %w", err)
	}
	return nil
}

func (s *Store) LndDeleteTrackers(ids []teos.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.lndUpdate(func(b *lndBuckets) error {
		for _, id := range ids {
			if err := b.trackers.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete lnd trackers: %w", err)
	}
	return nil
}
