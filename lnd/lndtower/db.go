package lndtower

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// extName is the tower file's extension bucket holding this front end's records.
const extName = "lnd"

var (
	// sessions: session_id(33) -> wtdb.SessionInfo (lnd's encoding).
	bktSessions = []byte("sessions")
	// updates: hint(16) || session_id(33) -> wtdb.SessionStateUpdate (lnd's encoding); the
	// hint first, so a block's hints are looked up with one seek each.
	bktUpdates = []byte("updates")
	// session_hints: session_id(33) || hint(16) -> empty; a session's updates, for DeleteSession.
	bktSessionHints = []byte("session_hints")
	// trackers: uuid(20) -> tracker record (see encodeTracker); justice transactions the
	// front end's responder follows.
	bktTrackers = []byte("trackers")
)

const sessionIDLen = 33

// ErrInvalidBlobSize is returned for a state update whose blob is not the size of the
// session's justice kit; lnd's tower refuses it the same way (it answers a temporary failure).
var ErrInvalidBlobSize = wtdb.ErrInvalidBlobSize

// DB keeps lnd clients' sessions and state updates, and the justice transactions being
// tracked, in the tower's bbolt file. It satisfies wtserver.DB, with lnd's TowerDB semantics,
// and responder.Store for the front end's own responder.
type DB struct {
	s   *store.Store
	log *slog.Logger
}

// NewDB returns the front end's records in s; log (may be nil) reports corrupt records.
func NewDB(s *store.Store, log *slog.Logger) *DB {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{s: s, log: log}
}

// sub returns the nested bucket name, nil if b (or it) does not exist yet.
func sub(b *bolt.Bucket, name []byte) *bolt.Bucket {
	if b == nil {
		return nil
	}
	return b.Bucket(name)
}

func (d *DB) update(fn func(sessions, updates, hints, trackers *bolt.Bucket) error) error {
	return d.s.ExtUpdate(extName, func(b *bolt.Bucket) error { return inBuckets(b, fn) })
}

// inBuckets runs fn on the nested buckets of b, creating them if needed.
func inBuckets(b *bolt.Bucket, fn func(sessions, updates, hints, trackers *bolt.Bucket) error) error {
	var bs [4]*bolt.Bucket
	for i, name := range [][]byte{bktSessions, bktUpdates, bktSessionHints, bktTrackers} {
		var err error
		if bs[i], err = b.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return fn(bs[0], bs[1], bs[2], bs[3])
}

func getSession(sessions *bolt.Bucket, id []byte) (*wtdb.SessionInfo, error) {
	v := sessions.Get(id)
	if v == nil {
		return nil, wtdb.ErrSessionNotFound
	}
	s := new(wtdb.SessionInfo)
	r := bytes.NewReader(v)
	if err := s.Decode(r); err != nil {
		return nil, fmt.Errorf("%w: session %x: %v", store.ErrCorrupt, id, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: session %x: %d trailing bytes", store.ErrCorrupt, id, r.Len())
	}
	return s, nil
}

func putSession(sessions *bolt.Bucket, s *wtdb.SessionInfo) error {
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		return err
	}
	return sessions.Put(s.ID[:], buf.Bytes())
}

// GetSessionInfo returns the session id, or wtdb.ErrSessionNotFound.
func (d *DB) GetSessionInfo(id *wtdb.SessionID) (*wtdb.SessionInfo, error) {
	var s *wtdb.SessionInfo
	err := d.s.ExtView(extName, func(b *bolt.Bucket) error {
		sessions := sub(b, bktSessions)
		if sessions == nil {
			return wtdb.ErrSessionNotFound
		}
		var err error
		s, err = getSession(sessions, id[:])
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// InsertSessionInfo stores a new session. As lnd's tower, it replaces a stored session that
// has no update yet (the client retried its CreateSession), refuses one that has
// (wtdb.ErrSessionAlreadyExists), and refuses a policy that does not validate.
func (d *DB) InsertSessionInfo(s *wtdb.SessionInfo) error {
	if err := s.Policy.Validate(); err != nil {
		return err
	}
	return d.countedUpdate(func(t *tally, sessions, _, _ *bolt.Bucket) error {
		switch prev, err := getSession(sessions, s.ID[:]); {
		case errors.Is(err, wtdb.ErrSessionNotFound):
			t.sessions++
		case err != nil:
			return err
		case prev.LastApplied > 0:
			return wtdb.ErrSessionAlreadyExists
		}
		return putSession(sessions, s)
	})
}

// InsertStateUpdate validates u against its session (blob size, sequence numbers, the
// session's maximum) and stores it with the session's new last applied number, all in one
// transaction: a refused update leaves nothing behind. The errors are wtdb's, which wtserver
// turns into lnd's reply codes.
func (d *DB) InsertStateUpdate(u *wtdb.SessionStateUpdate) (uint16, error) {
	var lastApplied uint16
	err := d.countedUpdate(func(t *tally, sessions, updates, hints *bolt.Bucket) error {
		s, err := getSession(sessions, u.ID[:])
		if err != nil {
			return err
		}
		commitType, err := s.Policy.BlobType.CommitmentType(nil)
		if err != nil {
			return err
		}
		kit, err := commitType.EmptyJusticeKit()
		if err != nil {
			return err
		}
		if len(u.EncryptedBlob) != blob.Size(kit) {
			return ErrInvalidBlobSize
		}
		if err := s.AcceptUpdateSequence(u.SeqNum, u.LastApplied); err != nil {
			return err
		}
		lastApplied = s.LastApplied
		if err := putSession(sessions, s); err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := u.Encode(&buf); err != nil {
			return err
		}
		k := updateKey(u.Hint, u.ID)
		if updates.Get(k) == nil { // a hint repeated in a session replaces its update
			t.updates++
		}
		if err := updates.Put(k, buf.Bytes()); err != nil {
			return err
		}
		return hints.Put(sessionHintKey(u.ID, u.Hint), nil)
	})
	if err != nil {
		return 0, err
	}
	return lastApplied, nil
}

// DeleteSession removes a session and all its updates.
func (d *DB) DeleteSession(id wtdb.SessionID) error {
	return d.countedUpdate(func(t *tally, sessions, updates, hints *bolt.Bucket) error {
		if _, err := getSession(sessions, id[:]); err != nil {
			return err
		}
		if err := sessions.Delete(id[:]); err != nil {
			return err
		}
		t.sessions--
		var keys [][]byte
		c := hints.Cursor()
		for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			var hint blob.BreachHint
			copy(hint[:], k[sessionIDLen:])
			if updates.Get(updateKey(hint, id)) != nil {
				t.updates--
			}
			if err := updates.Delete(updateKey(hint, id)); err != nil {
				return err
			}
			if err := hints.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// QueryMatches returns the stored updates whose hint is among hints, with their sessions. A
// record that cannot be read is logged and skipped, as lnd's tower does, rather than failing:
// the chain monitor would retry the block forever and stall the whole tower.
func (d *DB) QueryMatches(hints []blob.BreachHint) ([]wtdb.Match, error) {
	var matches []wtdb.Match
	err := d.s.ExtView(extName, func(b *bolt.Bucket) error {
		matches = nil
		sessions, updates := sub(b, bktSessions), sub(b, bktUpdates)
		if sessions == nil || updates == nil {
			return nil
		}
		c := updates.Cursor()
		for _, hint := range hints {
			for k, v := c.Seek(hint[:]); k != nil && bytes.HasPrefix(k, hint[:]); k, v = c.Next() {
				if len(k) != len(hint)+sessionIDLen {
					d.log.Error("skipping lnd state update", "key", fmt.Sprintf("%x", k), "err", "bad key length")
					continue
				}
				s, err := getSession(sessions, k[len(hint):])
				if err != nil {
					d.log.Error("skipping lnd state update", "key", fmt.Sprintf("%x", k), "err", err)
					continue
				}
				u := new(wtdb.SessionStateUpdate)
				if err := u.Decode(bytes.NewReader(v)); err != nil {
					d.log.Error("skipping lnd state update", "key", fmt.Sprintf("%x", k), "err", err)
					continue
				}
				matches = append(matches, wtdb.Match{
					ID: s.ID, SeqNum: u.SeqNum, Hint: hint, EncryptedBlob: u.EncryptedBlob, SessionInfo: s,
				})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("query breach hints: %w", err)
	}
	return matches, nil
}

// Counts returns how many sessions and state updates are stored (counts.go: one Get).
func (d *DB) Counts() (sessions, updates int, err error) {
	err = d.s.ExtView(extName, func(b *bolt.Bucket) error {
		s, u := storedCounts(b)
		sessions, updates = int(s), int(u)
		return nil
	})
	return sessions, updates, err
}

func updateKey(hint blob.BreachHint, id wtdb.SessionID) []byte {
	return append(append(make([]byte, 0, len(hint)+sessionIDLen), hint[:]...), id[:]...)
}

func sessionHintKey(id wtdb.SessionID, hint blob.BreachHint) []byte {
	return append(append(make([]byte, 0, len(hint)+sessionIDLen), id[:]...), hint[:]...)
}

// The responder.Store side: trackers for justice transactions. There is no appointment behind
// them, so deleting one (DeleteAppointments) deletes just the tracker; nothing is refunded.

const trackerVersion = 1

func encodeTracker(t *store.Tracker) []byte {
	v := []byte{trackerVersion}
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

func decodeTracker(id teos.UUID, v []byte) (*store.Tracker, error) {
	bad := func(what string) error { return fmt.Errorf("%w: tracker %s: %s", store.ErrCorrupt, id, what) }
	if len(v) < 1+4+1+64 || v[0] != trackerVersion {
		return nil, bad("short or unknown version")
	}
	t := &store.Tracker{UUID: id, Height: binary.BigEndian.Uint32(v[1:])}
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

// PutTracker stores t, replacing any tracker with its UUID.
func (d *DB) PutTracker(t *store.Tracker) error {
	if t == nil {
		return errors.New("put tracker: nil tracker")
	}
	v := encodeTracker(t)
	return d.update(func(_, _, _, trackers *bolt.Bucket) error { return trackers.Put(t.UUID[:], v) })
}

// Tracker returns the tracker id, or store.ErrNotFound.
func (d *DB) Tracker(id teos.UUID) (*store.Tracker, error) {
	var t *store.Tracker
	err := d.s.ExtView(extName, func(b *bolt.Bucket) error {
		var v []byte
		if tb := sub(b, bktTrackers); tb != nil {
			v = tb.Get(id[:])
		}
		if v == nil {
			return fmt.Errorf("tracker %s: %w", id, store.ErrNotFound)
		}
		var err error
		t, err = decodeTracker(id, v)
		return err
	})
	return t, err
}

// Trackers returns every tracker, ordered by UUID.
func (d *DB) Trackers() ([]*store.Tracker, error) {
	var out []*store.Tracker
	err := d.s.ExtView(extName, func(b *bolt.Bucket) error {
		out = nil
		tb := sub(b, bktTrackers)
		if tb == nil {
			return nil
		}
		return tb.ForEach(func(k, v []byte) error {
			if len(k) != teos.UUIDLen {
				return fmt.Errorf("%w: tracker key is %d bytes", store.ErrCorrupt, len(k))
			}
			t, err := decodeTracker(teos.UUID(k), v)
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list trackers: %w", err)
	}
	return out, nil
}

// ApplyChanges commits a block's tracker changes from the responder in one transaction:
// trackers stored first, then completed and dropped ones deleted (nothing to refund here);
// hand-overs are the watcher's and do not concern lnd's trackers.
func (d *DB) ApplyChanges(c *store.Changes) error {
	if c == nil || (len(c.Trackers) == 0 && len(c.Completed) == 0 && len(c.Dropped) == 0) {
		return nil
	}
	records := make([][]byte, len(c.Trackers))
	for i, t := range c.Trackers {
		if t == nil {
			return fmt.Errorf("apply changes: tracker %d is nil", i)
		}
		records[i] = encodeTracker(t)
	}
	return d.update(func(_, _, _, trackers *bolt.Bucket) error {
		for i, t := range c.Trackers {
			if err := trackers.Put(t.UUID[:], records[i]); err != nil {
				return err
			}
		}
		for _, ids := range [][]teos.UUID{c.Completed, c.Dropped} {
			for _, id := range ids {
				if err := trackers.Delete(id[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// DeleteAppointments deletes the trackers ids (the responder calls it when a justice
// transaction is irrevocably resolved or was rejected); refund has no meaning here.
func (d *DB) DeleteAppointments(ids []teos.UUID, _ bool) error {
	return d.update(func(_, _, _, trackers *bolt.Bucket) error {
		for _, id := range ids {
			if err := trackers.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// trackerUUID names the justice transaction for a session's update of hint.
func trackerUUID(id wtdb.SessionID, hint blob.BreachHint) teos.UUID {
	h := chainhash.HashB(append(append([]byte("lnd-justice"), id[:]...), hint[:]...))
	var u teos.UUID
	copy(u[:], h)
	return u
}
