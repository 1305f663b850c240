package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// defaultMaxBatch caps how many writes share one commit.
const defaultMaxBatch = 1000

// refusal wraps an error returned by a caller's policy function before its write touched the
// transaction: the call fails alone and the other writes of the batch still commit.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// writeCall is one write waiting for a group commit.
type writeCall struct {
	fn   func(b *buckets) error
	err  error
	done chan struct{}
}

// committer is a group commit: one goroutine writes, and every write queued while the previous
// commit was being fsynced joins the next one. Unlike bbolt's Batch there is no timer: a lone
// writer commits at once, and under load batches grow by themselves.
type committer struct {
	db       *bolt.DB
	maxBatch int

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	queue  chan *writeCall
	urgent chan *writeCall // block-path writes: each committed alone, before the next batch
	wg     sync.WaitGroup

	unsynced   atomic.Pointer[error] // set by txUpdate (ErrUnsynced, ErrDamaged): every later write fails with it
	unsyncedCh chan struct{}         // closed when unsynced is set
	// txMu serialises txUpdate, so that no other commit lands between a failed commit and
	// the check of its transaction id (the next commit would reuse that id). bbolt admits
	// one writer at a time anyway.
	txMu sync.Mutex
}

func newCommitter(db *bolt.DB, maxBatch int) *committer {
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatch
	}
	c := &committer{db: db, maxBatch: maxBatch, queue: make(chan *writeCall, maxBatch), urgent: make(chan *writeCall, 64),
		unsyncedCh: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

// write runs fn in a shared read-write transaction and returns once it is committed. fn must
// return refusal-wrapped errors for refusals made before it wrote anything; any other error
// rolls the whole batch back, after which each call is retried in a transaction of its own,
// so fn may run twice and must have no effects outside the transaction.
func (c *committer) write(fn func(b *buckets) error) error {
	if err := c.broken(); err != nil {
		return err
	}
	call := &writeCall{fn: fn, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return bolt.ErrDatabaseNotOpen
	}
	c.queue <- call
	c.mu.RUnlock()
	<-call.done
	var r refusal
	if errors.As(call.err, &r) {
		return r.err
	}
	return call.err
}

// writeFirst runs fn in a transaction of its own, ahead of every queued write, and returns
// once it is committed (or fn's error). It is for the block path and other rare writes:
// blocks first, adds wait at most for the commit in progress.
func (c *committer) writeFirst(fn func(b *buckets) error) error {
	if err := c.broken(); err != nil {
		return err
	}
	call := &writeCall{fn: fn, done: make(chan struct{})}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return bolt.ErrDatabaseNotOpen
	}
	c.urgent <- call
	c.mu.RUnlock()
	<-call.done
	return call.err
}

func (c *committer) loop() {
	defer c.wg.Done()
	queue, urgent := c.queue, c.urgent
	for queue != nil || urgent != nil {
		// Urgent writes first, whenever the writer is free.
		select {
		case call, ok := <-urgent:
			if !ok {
				urgent = nil
			} else {
				c.commitAlone(call)
			}
			continue
		default:
		}
		select {
		case call, ok := <-urgent:
			if !ok {
				urgent = nil
			} else {
				c.commitAlone(call)
			}
		case first, ok := <-queue:
			if !ok {
				queue = nil
				continue
			}
			calls := []*writeCall{first}
		gather:
			// An urgent write arriving ends the gathering: it goes right after this batch.
			for len(calls) < c.maxBatch && len(c.urgent) == 0 {
				select {
				case call, ok := <-queue:
					if !ok {
						queue = nil
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
}

func (c *committer) commitAlone(call *writeCall) {
	call.err = c.txUpdate(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if err := call.fn(b); err != nil {
			return err
		}
		return b.flushCounts()
	})
	filtersFor(c.db).maybeRebuild() // before the caller returns: a rebuild it caused has started
	close(call.done)
}

func (c *committer) commit(calls []*writeCall) {
	if err := c.update(calls); err != nil {
		if len(calls) == 1 {
			calls[0].err = err
		} else {
			// One call failed after writing: retry each alone so only that one fails.
			for _, call := range calls {
				if err := c.update([]*writeCall{call}); err != nil {
					call.err = err
				}
			}
		}
	}
	filtersFor(c.db).maybeRebuild()
	for _, call := range calls {
		close(call.done)
	}
}

// errAllRefused rolls back a transaction in which every call was refused: nothing to commit.
var errAllRefused = errors.New("every write refused")

// update runs calls in one transaction; a refusal fails only its own call.
func (c *committer) update(calls []*writeCall) error {
	err := c.txUpdate(func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		accepted := false
		for _, call := range calls {
			call.err = call.fn(b)
			if call.err == nil {
				accepted = true
			} else if !errors.As(call.err, new(refusal)) {
				return call.err
			}
		}
		if !accepted {
			return errAllRefused
		}
		return b.flushCounts()
	})
	if errors.Is(err, errAllRefused) {
		return nil
	}
	return err
}

// ErrUnsynced is returned by every write after a commit failed once its meta page was
// written: bbolt then reads that commit back as done, though its flush failed and the disk
// may not hold it (and Linux reports the next flushes as successful). Writes built on it could
// be acknowledged and lost in a crash, so none is made until the store is reopened.
var ErrUnsynced = errors.New("store: a commit's flush to disk failed after it was written; writes are refused until teosd restarts")

func (c *committer) broken() error {
	if p := c.unsynced.Load(); p != nil {
		return *p
	}
	return nil
}

// txUpdate is db.Update for every write of the store: it refuses to run once a commit's
// outcome became uncertain (ErrUnsynced), and detects that case: fn succeeded, the commit
// failed, and yet the file's transaction id moved on.
func (c *committer) txUpdate(fn func(tx *bolt.Tx) error) error {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	if err := c.broken(); err != nil {
		return err
	}
	var id int
	fnOK := false
	err := updateTx(c.db, func(tx *bolt.Tx) error {
		id = tx.ID()
		if err := fn(tx); err != nil {
			return err
		}
		fnOK = true
		return nil
	})
	if errors.Is(err, ErrDamaged) {
		// bbolt rolled back, but its freelist and node cache may not match the file now.
		return c.refuseWrites(fmt.Errorf("%w; writes are refused until teosd restarts", err))
	}
	if err == nil || !fnOK {
		return err
	}
	visible := false
	_ = viewTx(c.db, func(tx *bolt.Tx) error { visible = tx.ID() >= id; return nil })
	if !visible { // rolled back cleanly (a full disk, a read-only file): later writes may succeed
		return err
	}
	return c.refuseWrites(fmt.Errorf("%w: %v", ErrUnsynced, err))
}

// refuseWrites makes every later write fail with err (the first such error wins) and closes
// unsyncedCh; it returns the error writes now fail with.
func (c *committer) refuseWrites(err error) error {
	if c.unsynced.CompareAndSwap(nil, &err) {
		close(c.unsyncedCh)
	}
	return c.broken()
}

// close stops accepting writes and waits for the queued ones to commit.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.queue)
		close(c.urgent)
	}
	c.mu.Unlock()
	c.wg.Wait()
}
