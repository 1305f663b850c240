package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// The lnd front end's records (store.LndRecords). Each call is one transaction of its own,
// outside the group commit: a session's row lock orders its updates across instances.

var _ store.LndRecords = (*Store)(nil)

// migrationLnd is the lnd front end's part of the schema (version 2). Updates are keyed by
// (hint, session) like the bbolt layout, so a block's hints are one indexed query; they go
// with their session.
const migrationLnd = `
	CREATE TABLE lnd_sessions (
		session_id bytea PRIMARY KEY,
		record bytea NOT NULL);
	CREATE TABLE lnd_updates (
		hint bytea NOT NULL,
		session_id bytea NOT NULL REFERENCES lnd_sessions ON DELETE CASCADE,
		record bytea NOT NULL,
		PRIMARY KEY (hint, session_id));
	CREATE INDEX lnd_updates_session ON lnd_updates (session_id);
	CREATE TABLE lnd_trackers (
		uuid bytea PRIMARY KEY,
		dispute_tx bytea NOT NULL,
		penalty_tx bytea NOT NULL,
		dispute_txid bytea NOT NULL,
		penalty_txid bytea NOT NULL,
		height bigint NOT NULL,
		confirmed boolean NOT NULL);`

// migrationLndCounts (version 2 -> 3) keeps each session's number of updates in its row,
// written under the session's row lock that every update takes anyway, so LndCounts reads
// O(sessions) rows without a single counter row that every instance's writes would queue on.
// An older database's counts are backfilled from its updates.
const migrationLndCounts = `
	ALTER TABLE lnd_sessions ADD COLUMN n_updates bigint NOT NULL DEFAULT 0 CHECK (n_updates >= 0);
	UPDATE lnd_sessions s SET n_updates = c.n
		FROM (SELECT session_id, count(*) AS n FROM lnd_updates GROUP BY session_id) c
		WHERE s.session_id = c.session_id;`

// callbackErr carries a caller's callback error out of the transaction unwrapped.
type callbackErr struct{ err error }

func (c callbackErr) Error() string { return c.err.Error() }

func (s *Store) inTx(what string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return s.inTxMaybeLeader(what, false, fn)
}

// inTxMaybeLeader is inTx, for a leader-only write if leader (fence.go).
func (s *Store) inTxMaybeLeader(what string, leader bool, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := opCtx()
	defer cancel()
	run := func(tx pgx.Tx) error { return fn(ctx, tx) }
	begin := func() error { return pgx.BeginFunc(ctx, s.pool, run) }
	if leader {
		begin = func() error { return s.leaderTx(ctx, run) }
	}
	err := begin()
	if retryable(err) {
		err = begin()
	}
	var ce callbackErr
	if errors.As(err, &ce) {
		return ce.err
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Store) LndSession(id store.LndSessionID) (rec []byte, ok bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	err = s.pool.QueryRow(ctx, `SELECT record FROM lnd_sessions WHERE session_id = $1`, id[:]).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load lnd session %x: %w", id, err)
	}
	return rec, true, nil
}

// lockSession returns the session's record, locked for the rest of tx (nil if none).
func lockSession(ctx context.Context, tx pgx.Tx, id store.LndSessionID) ([]byte, error) {
	var rec []byte
	err := tx.QueryRow(ctx, `SELECT record FROM lnd_sessions WHERE session_id = $1 FOR UPDATE`, id[:]).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return rec, err
}

func (s *Store) LndPutSession(id store.LndSessionID, rec []byte, check func(prev []byte) error) error {
	return s.inTx(fmt.Sprintf("store lnd session %x", id), func(ctx context.Context, tx pgx.Tx) error {
		// A new session is inserted at once; an existing one is locked before check sees it,
		// so an update committing meanwhile on another instance is not overwritten unseen.
		tag, err := tx.Exec(ctx, `INSERT INTO lnd_sessions (session_id, record) VALUES ($1, $2) ON CONFLICT (session_id) DO NOTHING`,
			id[:], nonNil(rec))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if check != nil {
				if err := check(nil); err != nil {
					return callbackErr{err}
				}
			}
			return nil
		}
		prev, err := lockSession(ctx, tx, id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(prev); err != nil {
				return callbackErr{err}
			}
		}
		_, err = tx.Exec(ctx, `UPDATE lnd_sessions SET record = $2 WHERE session_id = $1`, id[:], nonNil(rec))
		return err
	})
}

func (s *Store) LndAddUpdate(id store.LndSessionID, hint store.LndHint, fn func(session []byte) (newSession, update []byte, err error)) error {
	if fn == nil {
		return fmt.Errorf("store lnd state update of %x: nil function", id)
	}
	return s.inTx(fmt.Sprintf("store lnd state update of %x", id), func(ctx context.Context, tx pgx.Tx) error {
		prev, err := lockSession(ctx, tx, id)
		if err != nil {
			return err
		}
		sess, upd, err := fn(prev)
		if err != nil {
			return callbackErr{err}
		}
		// The session's row is locked from here on (inserted or updated).
		if _, err := tx.Exec(ctx, `INSERT INTO lnd_sessions (session_id, record) VALUES ($1, $2)
			ON CONFLICT (session_id) DO UPDATE SET record = EXCLUDED.record`, id[:], nonNil(sess)); err != nil {
			return err
		}
		// Every writer of a session's updates holds its row lock, so this statement's snapshot
		// (taken under the lock) tells truly whether the update is new, and only a new one counts.
		_, err = tx.Exec(ctx, `WITH prev AS (
				SELECT EXISTS (SELECT 1 FROM lnd_updates WHERE hint = $1 AND session_id = $2) AS found),
			put AS (
				INSERT INTO lnd_updates VALUES ($1, $2, $3)
				ON CONFLICT (hint, session_id) DO UPDATE SET record = EXCLUDED.record)
			UPDATE lnd_sessions SET n_updates = n_updates + 1
				WHERE session_id = $2 AND NOT (SELECT found FROM prev)`, hint[:], id[:], nonNil(upd))
		return err
	})
}

func (s *Store) LndDeleteSession(id store.LndSessionID) (found bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	// The updates go with it (ON DELETE CASCADE), in the same statement, and so does their
	// count (n_updates).
	tag, err := s.pool.Exec(ctx, `DELETE FROM lnd_sessions WHERE session_id = $1`, id[:])
	if err != nil {
		return false, fmt.Errorf("delete lnd session %x: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

func (s *Store) LndMatches(hints []store.LndHint) ([]store.LndMatch, error) {
	if len(hints) == 0 {
		return nil, nil
	}
	keys := make([][]byte, len(hints))
	for i := range hints {
		keys[i] = hints[i][:]
	}
	ctx, cancel := opCtx()
	defer cancel()
	// One indexed query for the block; ordered by the hints' position, then session.
	var out []store.LndMatch
	rows, _ := s.pool.Query(ctx, `SELECT u.hint, u.session_id, s.record, u.record
		FROM unnest($1::bytea[]) WITH ORDINALITY AS h(hint, pos)
		JOIN lnd_updates u ON u.hint = h.hint
		LEFT JOIN lnd_sessions s ON s.session_id = u.session_id
		ORDER BY h.pos, u.session_id`, keys)
	defer rows.Close()
	for rows.Next() {
		var hint, sid, srec, urec []byte
		if err := rows.Scan(&hint, &sid, &srec, &urec); err != nil {
			return nil, fmt.Errorf("query lnd breach hints: %w", err)
		}
		if len(hint) != store.LndHintLen || len(sid) != store.LndSessionIDLen {
			continue // as the bbolt engine: a malformed key is skipped
		}
		m := store.LndMatch{SessionRecord: srec, UpdateRecord: urec}
		copy(m.Hint[:], hint)
		copy(m.Session[:], sid)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query lnd breach hints: %w", err)
	}
	return out, nil
}

func (s *Store) LndCounts() (sessions, updates int, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	var a, b int64
	// O(sessions): each session row carries its number of updates (migrationLndCounts).
	err = s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(n_updates), 0)::bigint FROM lnd_sessions`).Scan(&a, &b)
	if err != nil {
		return 0, 0, fmt.Errorf("count lnd records: %w", err)
	}
	return int(a), int(b), nil
}

const putLndTrackerSQL = `INSERT INTO lnd_trackers VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (uuid) DO UPDATE SET dispute_tx = EXCLUDED.dispute_tx, penalty_tx = EXCLUDED.penalty_tx,
	dispute_txid = EXCLUDED.dispute_txid, penalty_txid = EXCLUDED.penalty_txid, height = EXCLUDED.height,
	confirmed = EXCLUDED.confirmed`

// LndPutTracker, LndApplyChanges and LndDeleteTrackers are leader-only writes (fence.go).
func (s *Store) LndPutTracker(t *store.Tracker) error {
	if t == nil {
		return errors.New("put lnd tracker: nil tracker")
	}
	return s.inTxMaybeLeader(fmt.Sprintf("put lnd tracker %s", t.UUID), true, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, putLndTrackerSQL, trackerArgs(t)...)
		return err
	})
}

func (s *Store) LndTracker(id teos.UUID) (*store.Tracker, error) {
	return s.trackerIn("lnd_trackers", id)
}

func (s *Store) LndTrackers() ([]*store.Tracker, error) {
	out, _, err := s.trackersIn("lnd_trackers")
	return out, err
}

func (s *Store) LndTrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error) {
	return s.trackersIn("lnd_trackers")
}

// LndApplyChanges ignores c.Basis, as the bbolt engine: a block's commit writes no record an
// lnd client writes (store.Store.LndApplyChanges says why). Each instance's lookout and
// responder write lnd_trackers from its chain goroutine, and only the leader runs them.
func (s *Store) LndApplyChanges(c *store.Changes) error {
	if c == nil || len(c.Trackers)+len(c.TrackersGone()) == 0 {
		return nil
	}
	for i, t := range c.Trackers {
		if t == nil {
			return fmt.Errorf("apply lnd changes: tracker %d is nil", i)
		}
	}
	return s.inTxMaybeLeader("apply lnd changes", true, func(ctx context.Context, tx pgx.Tx) error {
		for _, t := range c.Trackers {
			if _, err := tx.Exec(ctx, putLndTrackerSQL, trackerArgs(t)...); err != nil {
				return err
			}
		}
		// No appointment behind these trackers: untracking one just deletes it.
		return deleteLndTrackers(ctx, tx, c.TrackersGone())
	})
}

func deleteLndTrackers(ctx context.Context, tx pgx.Tx, ids []teos.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([][]byte, len(ids))
	for i := range ids {
		keys[i] = ids[i][:]
	}
	_, err := tx.Exec(ctx, `DELETE FROM lnd_trackers WHERE uuid = ANY($1::bytea[])`, keys)
	return err
}

func (s *Store) LndDeleteTrackers(ids []teos.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	return s.inTxMaybeLeader("delete lnd trackers", true, func(ctx context.Context, tx pgx.Tx) error {
		return deleteLndTrackers(ctx, tx, ids)
	})
}
