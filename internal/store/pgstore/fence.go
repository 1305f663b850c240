package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Leadership fencing. The instance that wins the leadership lock starts a new term (NewTerm:
// the leader_term row's counter, incremented on the lock's own session). Every leader-only
// write (the block path's: the tip, trackers, deletions, expired users) first reads that row
// FOR SHARE in its own transaction and commits only if the term is still the one this
// instance won. The row lock orders the two: a new term waits for the old leader's writes in
// flight, and once it is committed every later write of the old leader is refused, so an old
// leader that has not yet noticed it lost the lock cannot undo what the new one decides.

// migrationLeaderTerm (version 3 -> 4) adds the leadership term; 0 until a leader starts one.
const migrationLeaderTerm = `
	CREATE TABLE leader_term (
		id int PRIMARY KEY CHECK (id = 1),
		term bigint NOT NULL);
	INSERT INTO leader_term VALUES (1, 0);`

// ErrNotLeader is returned by a leader-only write of a fenced store (Store.Fence) when this
// instance does not hold the current leadership term. Nothing was written.
var ErrNotLeader = errors.New("pgstore: this instance no longer holds the leadership")

type fenceTerm struct {
	term int64
	lost func()
}

// NewTerm starts a leadership term and returns it. Call it on the session that holds the
// leadership lock, right after winning it and before acting as leader: it waits for the
// previous leader's writes in flight, and refuses its later ones.
func NewTerm(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var term int64
	err := conn.QueryRow(ctx, `UPDATE leader_term SET term = term + 1 WHERE id = 1 RETURNING term`).Scan(&term)
	if err != nil {
		return 0, fmt.Errorf("start a leadership term: %w", err)
	}
	return term, nil
}

// Fence makes the leader-only writes commit only while term (from NewTerm) is the current
// leadership term; term 0 (following) refuses them all. When a write is refused because
// another instance started a newer term, lost is called (once per refused write, from the
// writing goroutine; it must not block). A store never fenced writes unchecked: a single
// instance, an import.
func (s *Store) Fence(term int64, lost func()) {
	s.fence.Store(&fenceTerm{term: term, lost: lost})
}

// checkLeader is the first statement of a leader-only write transaction (leaderTx).
func (s *Store) checkLeader(ctx context.Context, tx pgx.Tx) error {
	f := s.fence.Load()
	if f == nil {
		return nil
	}
	if f.term == 0 {
		return ErrNotLeader
	}
	var cur int64
	if err := tx.QueryRow(ctx, `SELECT term FROM leader_term WHERE id = 1 FOR SHARE`).Scan(&cur); err != nil {
		return fmt.Errorf("check the leadership term: %w", err)
	}
	if cur == f.term {
		return nil
	}
	if f.lost != nil {
		f.lost()
	}
	return fmt.Errorf("%w (term %d, now %d)", ErrNotLeader, f.term, cur)
}

// leaderTx runs fn in a transaction that commits only if this instance holds the leadership
// (checkLeader). Its idle time is bounded as an add's (lockHoldSQL): it holds the term's row,
// which the next leader's term waits for, and some hold users' rows (a stale basis's owners,
// expired users), which an add waits for holding the adds' lock.
func (s *Store) leaderTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	opts := pgx.TxOptions{BeginQuery: "BEGIN; " + lockHoldSQL(s.sendBound)}
	return pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		if err := s.checkLeader(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}
