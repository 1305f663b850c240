package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// refusal wraps a policy's error, returned before the call wrote anything: the call fails
// alone and the rest of its batch commits.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

type writeCall struct {
	fn     func(ctx context.Context, tx pgx.Tx) error // nil (and no upsert): a wait
	upsert *upsertCall                                // set instead of fn for appointment upserts
	err    error
	done   chan struct{}
}

// committer is the group commit, as the bbolt engine's: one goroutine runs every write queued
// while the previous transaction was committing in one transaction, so concurrent adds share
// one commit (one WAL flush).
type committer struct {
	pool      *pgxpool.Pool
	maxBatch  int
	sendBound bool // lockHoldSQL's

	mu     sync.RWMutex
	closed bool
	queue  chan *writeCall
	wg     sync.WaitGroup
}

var errClosed = errors.New("pgstore: store closed")

func newCommitter(pool *pgxpool.Pool, maxBatch int, sendBound bool) *committer {
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	c := &committer{pool: pool, maxBatch: maxBatch, sendBound: sendBound, queue: make(chan *writeCall, maxBatch)}
	c.wg.Add(1)
	go c.loop()
	return c
}

func (c *committer) write(fn func(ctx context.Context, tx pgx.Tx) error) error {
	if fn == nil {
		return errors.New("pgstore: nil write")
	}
	return c.enqueue(&writeCall{fn: fn, done: make(chan struct{})})
}

// wait returns once every write queued before it has committed; it writes nothing.
func (c *committer) wait() error {
	return c.enqueue(&writeCall{done: make(chan struct{})})
}

// writeUpserts runs u in the group commit; its per-item outcomes are in u.results.
func (c *committer) writeUpserts(u *upsertCall) error {
	return c.enqueue(&writeCall{upsert: u, done: make(chan struct{})})
}

func (c *committer) enqueue(call *writeCall) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return errClosed
	}
	c.queue <- call
	c.mu.RUnlock()
	<-call.done
	if r, ok := errors.AsType[refusal](call.err); ok {
		return r.err
	}
	return call.err
}

func (c *committer) loop() {
	defer c.wg.Done()
	for first := range c.queue {
		calls := []*writeCall{first}
	gather:
		for len(calls) < c.maxBatch {
			select {
			case call, ok := <-c.queue:
				if !ok {
					break gather
				}
				calls = append(calls, call)
			default:
				break gather
			}
		}
		c.commit(calls)
	}
}

func (c *committer) commit(calls []*writeCall) {
	err := c.update(calls)
	if err != nil && (retryable(err) || errors.Is(err, errCommitLost)) {
		// Another instance's transaction deadlocked with this one, or the COMMIT was lost and
		// nothing stored: once more, the same batch.
		err = c.update(calls)
	}
	if err != nil {
		if len(calls) == 1 || errors.Is(err, errCommitUnknown) {
			// One call, or a batch that may have committed: running its calls again would
			// apply them twice, so each fails with the error (refusals stay as they are).
			for _, call := range calls {
				if !errors.As(call.err, new(refusal)) {
					call.err = err
				}
			}
		} else {
			for _, call := range calls {
				if err := c.update([]*writeCall{call}); err != nil {
					call.err = err
				}
			}
		}
	}
	for _, call := range calls {
		close(call.done)
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// errCommitUnknown is a COMMIT that got no answer (the connection failed or timed out) and
// whose outcome the server could not be asked: the transaction may have committed.
var errCommitUnknown = errors.New("pgstore: no answer to COMMIT, the write may or may not be stored")

// errCommitLost is a COMMIT that got no answer and, the server says, stored nothing.
var errCommitLost = errors.New("pgstore: no answer to COMMIT, and nothing was stored")

func (c *committer) update(calls []*writeCall) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// Bounded idle from the start, as an add's (mined.go): a registration's transaction holds
	// a user's row, which an add for that user waits for holding the adds' lock. Likewise its
	// wait for a gone client to take a large result (sendbound.go).
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + lockHoldSQL(c.sendBound)})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op once committed
	// The transaction's id, to ask the server its outcome if the COMMIT gets no answer: read
	// after the writes, with the upserts' last statements, else on its own.
	var ref txRef
	wrote, err := runCalls(ctx, tx, calls, &ref)
	if err != nil {
		return err
	}
	if wrote && ref.xid == 0 {
		if err := ref.scan(tx.QueryRow(ctx, xidSQL)); err != nil {
			return err
		}
	}
	if ref.xid == 0 {
		// Nothing written (a wait, refusals; an id only from locking rows for them): the
		// deferred ROLLBACK ends it without the COMMIT's WAL record and flush, and no answer
		// to it can leave anything in doubt.
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		// An answer from the server (an error, or ROLLBACK for an aborted transaction) means
		// nothing was committed; without one, the server is asked.
		if commitRefused(err) {
			return err
		}
		committed, rerr := c.outcome(ref.xid, ref.pid)
		switch {
		case rerr != nil:
			return fmt.Errorf("%w: %w (asking the server: %w)", errCommitUnknown, err, rerr)
		case committed:
			// Reporting a failure would make the client send it again: a renewal credited twice.
			return nil
		}
		return fmt.Errorf("%w: %w", errCommitLost, err)
	}
	return nil
}

// commitRefused tells whether COMMIT's error is the server's answer that nothing was
// committed: an ERROR, or ROLLBACK. A FATAL (or PANIC) ends the session, possibly after the
// commit: PgBouncer's "server conn crashed?" when its link to the server fails with the
// COMMIT on it, a shutdown's 57P01. That is no answer: the server is asked.
func commitRefused(err error) bool {
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return true
	}
	pe, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return false
	}
	sev := pe.SeverityUnlocalized // absent before PostgreSQL 9.6 and from poolers
	if sev == "" {
		sev = pe.Severity
	}
	return sev == "ERROR"
}

// xidSQL reads the transaction's id, NULL if it has none (it wrote nothing: assigning one
// would make its COMMIT write WAL), and its backend's process id: the server's own, as the
// protocol's is a pooler's behind one (PgBouncer).
const xidSQL = `SELECT txid_current_if_assigned(), pg_backend_pid()`

// txRef is a transaction's id (0: none) and its backend's process id (xidSQL).
type txRef struct {
	xid int64
	pid int32
}

func (r *txRef) scan(row pgx.Row) error {
	var xid *int64
	if err := row.Scan(&xid, &r.pid); err != nil {
		return err
	}
	r.xid = 0
	if xid != nil {
		r.xid = *xid
	}
	return nil
}

// outcomeSQL ends the backend pid if it still holds transaction $1 (its COMMIT lost on the
// way, or still on it), after which the transaction's status is final, and reads that status.
const outcomeSQL = `SELECT (SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	WHERE pid = $2 AND backend_xid::text::bigint = $1 % 4294967296), txid_status($1)`

// syncBarrierSQL writes WAL (a commit without any waits for no standby), on a row every
// instance has and only the schema's migration locks for long.
const syncBarrierSQL = `UPDATE teos_schema SET version = version`

// outcome asks the server, on another connection, whether transaction xid of backend pid,
// whose COMMIT got no answer, committed.
func (c *committer) outcome(xid int64, pid int32) (committed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for {
		var ended int
		var status *string
		if err := c.pool.QueryRow(ctx, outcomeSQL, xid, pid).Scan(&ended, &status); err != nil {
			return false, err
		}
		switch {
		case status == nil:
			return false, fmt.Errorf("transaction %d is too old for its status to be known", xid)
		case *status == "committed":
			// Under synchronous replication a COMMIT is answered once the standby has it; this
			// one's wait may have been cut short (the client's cancel on its timeout, the
			// termination above), which commits locally, unreplicated. A commit of our own,
			// later in the WAL, returns once the standby has everything before it.
			if err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, syncBarrierSQL)
				return err
			}); err != nil {
				return false, fmt.Errorf("transaction %d committed here, not known to be on the synchronous standbys: %w", xid, err)
			}
			return true, nil
		case *status == "aborted":
			return false, nil
		}
		// In progress: the ended backend has not exited yet.
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// runCalls runs a batch's calls in tx and tells whether any wrote (a refusal, by its
// contract, did not; nor does a wait); if its upserts wrote, it sets *ref to tx's (xidSQL).
func runCalls(ctx context.Context, tx pgx.Tx, calls []*writeCall, ref *txRef) (wrote bool, err error) {
	// Other writes first, then every upsert together: a serial order of concurrent calls.
	var upserts []*upsertCall
	for _, call := range calls {
		switch {
		case call.upsert != nil:
			call.err = nil
			upserts = append(upserts, call.upsert)
			continue
		case call.fn == nil: // a wait (Store.WaitWrites)
			call.err = nil
			continue
		}
		call.err = call.fn(ctx, tx)
		if call.err != nil && !errors.As(call.err, new(refusal)) {
			return false, call.err
		}
		wrote = wrote || call.err == nil
	}
	if len(upserts) == 0 {
		return wrote, nil
	}
	upserted, err := runUpserts(ctx, tx, upserts, ref)
	if err != nil {
		for _, call := range calls {
			if call.upsert != nil {
				call.err = err
			}
		}
		return false, err
	}
	return wrote || upserted, nil
}

func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
	}
	c.mu.Unlock()
	c.wg.Wait()
}
