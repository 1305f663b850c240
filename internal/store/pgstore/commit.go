package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	fn     func(ctx context.Context, tx pgx.Tx) error
	upsert *upsertCall // set instead of fn for appointment upserts
	err    error
	done   chan struct{}
}

// committer is the group commit, as the bbolt engine's: one goroutine runs every write queued
// while the previous transaction was committing in one transaction, so concurrent adds share
// one commit (one WAL flush).
type committer struct {
	pool     *pgxpool.Pool
	maxBatch int

	mu     sync.RWMutex
	closed bool
	queue  chan *writeCall
	wg     sync.WaitGroup
}

var errClosed = errors.New("pgstore: store closed")

func newCommitter(pool *pgxpool.Pool, maxBatch int) *committer {
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	c := &committer{pool: pool, maxBatch: maxBatch, queue: make(chan *writeCall, maxBatch)}
	c.wg.Add(1)
	go c.loop()
	return c
}

func (c *committer) write(fn func(ctx context.Context, tx pgx.Tx) error) error {
	return c.enqueue(&writeCall{fn: fn, done: make(chan struct{})})
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
	if err != nil && retryable(err) {
		// Another instance's transaction deadlocked with this one: once more, the same batch.
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

// errCommitUnknown is a COMMIT that got no answer (the connection failed or timed out): the
// transaction may have committed.
var errCommitUnknown = errors.New("pgstore: no answer to COMMIT, the write may or may not be stored")

func (c *committer) update(calls []*writeCall) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op once committed
	if err := runCalls(ctx, tx, calls); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		// An answer from the server (an error, or ROLLBACK for an aborted transaction) means
		// nothing was committed; without one, the outcome is unknown.
		if _, ok := errors.AsType[*pgconn.PgError](err); ok || errors.Is(err, pgx.ErrTxCommitRollback) {
			return err
		}
		return fmt.Errorf("%w: %w", errCommitUnknown, err)
	}
	return nil
}

// runCalls runs a batch's calls in tx.
func runCalls(ctx context.Context, tx pgx.Tx, calls []*writeCall) error {
	// Other writes first, then every upsert together: a serial order of concurrent calls.
	var upserts []*upsertCall
	for _, call := range calls {
		if call.upsert != nil {
			call.err = nil
			upserts = append(upserts, call.upsert)
			continue
		}
		call.err = call.fn(ctx, tx)
		if call.err != nil && !errors.As(call.err, new(refusal)) {
			return call.err
		}
	}
	if len(upserts) == 0 {
		return nil
	}
	if err := runUpserts(ctx, tx, upserts); err != nil {
		for _, call := range calls {
			if call.upsert != nil {
				call.err = err
			}
		}
		return err
	}
	return nil
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
