package lndtower

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// ErrInvalidBlobSize is returned for a state update whose blob is not the size of the
// session's justice kit; lnd's tower refuses it the same way (it answers a temporary failure).
var ErrInvalidBlobSize = wtdb.ErrInvalidBlobSize

// errInvalidPolicy marks a CreateSession whose policy lnd's wtpolicy does not accept.
var errInvalidPolicy = errors.New("invalid session policy")

// DB keeps lnd clients' sessions and state updates, and the justice transactions being
// tracked, in the tower's store (either engine: store.LndRecords keeps lnd's encodings as
// opaque records). It satisfies wtserver.DB, with lnd's TowerDB semantics, and
// responder.Store for the front end's own responder.
type DB struct {
	s   store.LndRecords
	log *slog.Logger
}

// NewDB returns the front end's records in s; log (may be nil) reports corrupt records.
func NewDB(s store.LndRecords, log *slog.Logger) *DB {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DB{s: s, log: log}
}

func decodeSession(id []byte, v []byte) (*wtdb.SessionInfo, error) {
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

func encodeSession(s *wtdb.SessionInfo) ([]byte, error) {
	var buf bytes.Buffer
	if err := s.Encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GetSessionInfo returns the session id, or wtdb.ErrSessionNotFound.
func (d *DB) GetSessionInfo(id *wtdb.SessionID) (*wtdb.SessionInfo, error) {
	rec, ok, err := d.s.LndSession(store.LndSessionID(*id))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, wtdb.ErrSessionNotFound
	}
	return decodeSession(id[:], rec)
}

// InsertSessionInfo stores a new session. As lnd's tower, it replaces a stored session that
// has no update yet (the client retried its CreateSession), refuses one that has
// (wtdb.ErrSessionAlreadyExists), and refuses a policy that does not validate.
func (d *DB) InsertSessionInfo(s *wtdb.SessionInfo) error {
	_, err := d.insertSession(s, nil)
	return err
}

// insertSession is InsertSessionInfo with admitNew, if set, asked (inside the store's
// transaction, so it must have no side effects) before a session that was not stored is
// added; a replacement is not asked. added reports that a new session was stored.
func (d *DB) insertSession(s *wtdb.SessionInfo, admitNew func() error) (added bool, err error) {
	if err := s.Policy.Validate(); err != nil {
		return false, fmt.Errorf("%w: %w", errInvalidPolicy, err)
	}
	rec, err := encodeSession(s)
	if err != nil {
		return false, err
	}
	err = d.s.LndPutSession(store.LndSessionID(s.ID), rec, func(prev []byte) error {
		added = prev == nil
		if prev == nil {
			if admitNew != nil {
				return admitNew()
			}
			return nil
		}
		p, err := decodeSession(s.ID[:], prev)
		if err != nil {
			return err
		}
		if p.LastApplied > 0 {
			return wtdb.ErrSessionAlreadyExists
		}
		return nil
	})
	return added && err == nil, err
}

// InsertStateUpdate validates u against its session (blob size, sequence numbers, the
// session's maximum) and stores it with the session's new last applied number, all in one
// transaction: a refused update leaves nothing behind. The errors are wtdb's, which wtserver
// turns into lnd's reply codes.
//
// The sequence number last applied may come again (lnd's client resends a committed update
// whose reply it lost), and is accepted as lnd's tower does, but only with the hint it was
// stored with: lnd's client never changes a committed update's hint (wtdb.ErrUpdateAlreadyCommitted),
// and a new hint would be stored beside the old one, so resending without end would fill the
// store through one session, past its maximum and past max_stored_bytes (checked for new
// sessions only). Such a resend is refused as a number already applied (code 50).
func (d *DB) InsertStateUpdate(u *wtdb.SessionStateUpdate) (uint16, error) {
	lastApplied, err := d.insertUpdate(u, false)
	if errors.Is(err, errResent) {
		// Rare: look the hint up, then try again. Only DeleteSession removes an update, and
		// with it the session, so what the lookup finds is still there for the retry.
		held, herr := d.holds(u.ID, u.Hint)
		if herr != nil {
			return 0, herr
		}
		if !held {
			return 0, wtdb.ErrSeqNumAlreadyApplied
		}
		lastApplied, err = d.insertUpdate(u, true)
	}
	return lastApplied, err
}

// errResent stops an update carrying the sequence number last applied until its hint is
// known to be the stored one (InsertStateUpdate).
var errResent = errors.New("sequence number last applied sent again")

func (d *DB) insertUpdate(u *wtdb.SessionStateUpdate, resendHeld bool) (uint16, error) {
	var lastApplied uint16
	err := d.s.LndAddUpdate(store.LndSessionID(u.ID), store.LndHint(u.Hint), func(rec []byte) ([]byte, []byte, error) {
		if rec == nil {
			return nil, nil, wtdb.ErrSessionNotFound
		}
		s, err := decodeSession(u.ID[:], rec)
		if err != nil {
			return nil, nil, err
		}
		commitType, err := s.Policy.BlobType.CommitmentType(nil)
		if err != nil {
			return nil, nil, err
		}
		kit, err := commitType.EmptyJusticeKit()
		if err != nil {
			return nil, nil, err
		}
		if len(u.EncryptedBlob) != blob.Size(kit) {
			return nil, nil, ErrInvalidBlobSize
		}
		prev := s.LastApplied
		if err := s.AcceptUpdateSequence(u.SeqNum, u.LastApplied); err != nil {
			return nil, nil, err
		}
		if u.SeqNum == prev && !resendHeld {
			return nil, nil, errResent
		}
		lastApplied = s.LastApplied
		sess, err := encodeSession(s)
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		if err := u.Encode(&buf); err != nil {
			return nil, nil, err
		}
		return sess, buf.Bytes(), nil
	})
	if err != nil {
		return 0, err
	}
	return lastApplied, nil
}

// holds reports whether session id has an update stored under hint.
func (d *DB) holds(id wtdb.SessionID, hint blob.BreachHint) (bool, error) {
	found, err := d.s.LndMatches([]store.LndHint{store.LndHint(hint)})
	if err != nil {
		return false, err
	}
	for _, f := range found {
		if f.Session == store.LndSessionID(id) {
			return true, nil
		}
	}
	return false, nil
}

// DeleteSession removes a session and all its updates.
func (d *DB) DeleteSession(id wtdb.SessionID) error {
	found, err := d.s.LndDeleteSession(store.LndSessionID(id))
	if err != nil {
		return err
	}
	if !found {
		return wtdb.ErrSessionNotFound
	}
	return nil
}

// QueryMatches returns the stored updates whose hint is among hints, with their sessions. A
// record that cannot be read is logged and skipped, as lnd's tower does, rather than failing:
// the chain monitor would retry the block forever and stall the whole tower.
func (d *DB) QueryMatches(hints []blob.BreachHint) ([]wtdb.Match, error) {
	keys := make([]store.LndHint, len(hints))
	for i := range hints {
		keys[i] = store.LndHint(hints[i])
	}
	found, err := d.s.LndMatches(keys)
	if err != nil {
		return nil, err
	}
	var matches []wtdb.Match
	for _, f := range found {
		skip := func(err error) {
			d.log.Error("skipping lnd state update", "session", fmt.Sprintf("%x", f.Session), "hint", fmt.Sprintf("%x", f.Hint), "err", err)
		}
		if f.SessionRecord == nil {
			skip(wtdb.ErrSessionNotFound)
			continue
		}
		s, err := decodeSession(f.Session[:], f.SessionRecord)
		if err != nil {
			skip(err)
			continue
		}
		u := new(wtdb.SessionStateUpdate)
		if err := u.Decode(bytes.NewReader(f.UpdateRecord)); err != nil {
			skip(err)
			continue
		}
		matches = append(matches, wtdb.Match{
			ID: s.ID, SeqNum: u.SeqNum, Hint: blob.BreachHint(f.Hint), EncryptedBlob: u.EncryptedBlob, SessionInfo: s,
		})
	}
	return matches, nil
}

// Counts returns how many sessions and state updates are stored.
func (d *DB) Counts() (sessions, updates int, err error) { return d.s.LndCounts() }

// The responder.Store side: trackers for justice transactions. There is no appointment behind
// them, so deleting one (DeleteAppointments) deletes just the tracker; nothing is refunded.

// PutTracker stores t, replacing any tracker with its UUID.
func (d *DB) PutTracker(t *store.Tracker) error { return d.s.LndPutTracker(t) }

// Tracker returns the tracker id, or store.ErrNotFound.
func (d *DB) Tracker(id teos.UUID) (*store.Tracker, error) { return d.s.LndTracker(id) }

// Trackers returns every readable tracker, ordered by UUID.
func (d *DB) Trackers() ([]*store.Tracker, error) { return d.s.LndTrackers() }

// The responder lists trackers through TrackersChecked when the store has it, to log damaged ones.
var _ interface {
	TrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error)
} = (*DB)(nil)

// TrackersChecked is Trackers plus the records it skipped, which the responder logs once each.
func (d *DB) TrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error) {
	return d.s.LndTrackersChecked()
}

// ApplyChanges commits a block's tracker changes from the responder in one transaction:
// trackers stored first, then those Changes.TrackersGone lists deleted (nothing to refund here);
// hand-overs are the watcher's and do not concern lnd's trackers. Nothing a client stored is
// touched, so a session or state update stored while the block ran cannot be lost to its
// commit (store.Store.LndApplyChanges; TestClientWritesDuringABlock).
func (d *DB) ApplyChanges(c *store.Changes) error { return d.s.LndApplyChanges(c) }

// DeleteAppointments deletes the trackers ids (the responder calls it when a justice
// transaction is irrevocably resolved or was rejected); refund has no meaning here.
func (d *DB) DeleteAppointments(ids []teos.UUID, _ bool) error { return d.s.LndDeleteTrackers(ids) }

// trackerUUID names the justice transaction for a session's update of hint.
func trackerUUID(id wtdb.SessionID, hint blob.BreachHint) teos.UUID {
	h := chainhash.HashB(append(append([]byte("lnd-justice"), id[:]...), hint[:]...))
	var u teos.UUID
	copy(u[:], h)
	return u
}
