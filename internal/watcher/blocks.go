package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Only the chain goroutine hands breaches to the responder: BlockConnected for the appointments
// a block triggers, HandOverQueued (after each poll) for those stored after their dispute was
// mined, which AddAppointment queues in the store instead of handing them over itself. One
// goroutine thus owns the responder, and a hand-over can never race a block.

// maxHandOversPerRun bounds one HandOverQueued call: however long the queue (a flood of late
// appointments), the next poll, and the blocks it brings, wait for at most this many
// hand-overs. The monitor is woken again at once for the rest.
const maxHandOversPerRun = 100

// BlockConnected caches the block's locators, then hands every appointment the block
// triggers (all users) to the responder. Appointments whose blob is not a transaction
// encrypted under the dispute's txid, or whose penalty is rejected, are deleted and their
// slots refunded, as rust-teos v0.2 does. The new trackers and the deletions are committed in one
// transaction, also when a responder error stops the work halfway: the error is then
// returned, the chain monitor delivers the same block again, and the redo skips appointments
// that now have a tracker. Queued hand-overs are left to HandOverQueued.
func (w *Watcher) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	hash := block.BlockHash()
	txs, locs := indexBlock(block, hash)
	// An add in flight whose locator is in this block may not find the block in the cache (it
	// may look after the block left it): the lookup below must then find the appointment, so it
	// waits for that add's write. An add that marked its locator later checks the cache in its
	// transaction (inflight.go). Waiting only then keeps a block from waiting for an add
	// batch's commit under load.
	if err := waitWrites(ctx, w.cacheBlock(hash, txs)); err != nil {
		return fmt.Errorf("watcher at height %d: wait for adds of its locators: %w", height, err)
	}
	r := w.newRun()
	r.inBlock = true
	if err := errors.Join(r.block(ctx, txs, locs), r.commit()); err != nil {
		return fmt.Errorf("watcher at height %d: %w", height, err)
	}
	return nil
}

// HandOverQueued hands up to maxHandOversPerRun queued hand-overs to the responder and commits
// the outcome; each call resumes where the last one stopped, so every entry gets its turn. The
// chain monitor calls it after every poll, on its goroutine, so a hand-over queued between
// blocks, or before a restart, does not wait for a block. An error is transient: the entries
// not settled stay queued for the next call.
func (w *Watcher) HandOverQueued(ctx context.Context) error {
	list, err := w.store.QueuedHandOversFrom(w.drainFrom, maxHandOversPerRun+1)
	if err != nil {
		return fmt.Errorf("load queued hand-overs: %w", err)
	}
	more := len(list) > maxHandOversPerRun
	w.drainFrom = teos.UUID{}
	if more {
		w.drainFrom = list[maxHandOversPerRun].UUID
		list = list[:maxHandOversPerRun]
	}
	r := w.newRun()
	err = errors.Join(r.queued(ctx, list), r.commit())
	if more && err == nil {
		w.wake()
	}
	return err
}

// run is one batch of hand-overs and the store changes they make.
type run struct {
	w       *Watcher
	changes store.Changes
	done    map[teos.UUID]bool // settled in this run
	inBlock bool               // a block's run, not a drain of the hand-over queue
}

func (w *Watcher) newRun() *run { return &run{w: w, done: make(map[teos.UUID]bool)} }

// queued hands the queued hand-overs over, in order; after a failure the next call starts at
// the failed one.
func (r *run) queued(ctx context.Context, list []store.QueuedHandOver) error {
	for _, q := range list {
		if q.Err != nil {
			r.w.log.Error("dropping a queued hand-over that cannot be read", "uuid", q.UUID, "err", q.Err)
			r.changes.HandedOver = append(r.changes.HandedOver, q.UUID)
			continue
		}
		d := disputeTx{tx: new(wire.MsgTx), block: q.Block}
		if err := d.tx.Deserialize(bytes.NewReader(q.Dispute)); err != nil {
			r.w.log.Error("dropping a queued hand-over whose dispute cannot be decoded", "uuid", q.UUID, "err", err)
			r.handedOver(q)
			continue
		}
		d.txid = d.tx.TxHash()
		if err := r.handOver(ctx, q.Appointment, q.UUID, d); err != nil {
			r.w.drainFrom = q.UUID
			return err
		}
		r.handedOver(q)
	}
	return nil
}

// handedOver removes q from the queue at commit, unless its appointment was updated
// meanwhile: the update queued a hand-over of its own, which must stay.
func (r *run) handedOver(q store.QueuedHandOver) {
	r.changes.HandedOver = append(r.changes.HandedOver, q.UUID)
	r.seen(q.UUID, q.Appointment)
}

// seen records that the decisions about id were made on a: an update of a that is
// acknowledged before the commit (it queues its own hand-over) is left alone by the commit.
func (r *run) seen(id teos.UUID, a *store.Appointment) {
	if r.changes.Basis == nil {
		r.changes.Basis = make(map[teos.UUID]store.Basis)
	}
	r.changes.Basis[id] = store.Basis{UserSignature: a.UserSignature}
}

// block looks all the block's locators up at once and hands each match over, in block order.
func (r *run) block(ctx context.Context, txs map[teos.Locator]disputeTx, locs []teos.Locator) error {
	found, err := r.w.store.AppointmentsByLocators(locs)
	if errors.Is(err, store.ErrCorrupt) && found != nil {
		// Failing the block would retry it for ever and watch no later block: the readable
		// matches are handled, the damaged records reported.
		r.w.log.Error("appointments matching this block cannot be read; handling the others", "err", err)
	} else if err != nil {
		return fmt.Errorf("look up %d locators: %w", len(locs), err)
	}
	for _, loc := range locs {
		appts, ok := found[loc]
		if !ok {
			continue
		}
		delete(found, loc) // a repeated locator is handled once
		for _, a := range appts {
			if err := r.handOver(ctx, a, a.UUID(), txs[loc]); err != nil {
				return err
			}
		}
	}
	return nil
}

// handOver decrypts a's penalty with the dispute's txid and gives the breach to the
// responder, recording the outcome in r.changes. An error is transient: nothing was decided.
func (r *run) handOver(ctx context.Context, a *store.Appointment, id teos.UUID, d disputeTx) error {
	if r.done[id] {
		return nil
	}
	if r.w.responder == nil {
		return errNoResponder
	}
	_, err := r.w.store.Tracker(id)
	if errors.Is(err, store.ErrDamaged) {
		// A damaged page, not a record: whether a tracker exists is unknown, and skipping
		// would lose the breach. The block fails and is retried, the damage in the log.
		return fmt.Errorf("load tracker %s: %w", id, err)
	}
	if err == nil || errors.Is(err, store.ErrCorrupt) {
		// A damaged tracker record is still a tracker: failing here would fail the block, and
		// the monitor would retry it for ever (the responder skips and logs the record).
		if err != nil {
			r.w.log.Error("appointment has a tracker record that cannot be read; not handing it over again", "uuid", id, "err", err)
		}
		r.done[id] = true
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("load tracker %s: %w", id, err)
	}
	log := r.w.log
	penalty, err := wtcrypto.DecryptTx(a.EncryptedBlob, d.txid)
	if err != nil {
		log.Info("triggered appointment is invalid, deleting it", "locator", a.Locator, "uuid", id,
			"dispute_txid", d.txid, "reason", err)
		r.invalid(id, a)
		r.done[id] = true
		return nil
	}
	log.Info("breach found", "locator", a.Locator, "uuid", id, "dispute_txid", d.txid, "penalty_txid", penalty.TxHash())
	t, err := r.w.responder.HandleBreach(ctx, id, d.tx, penalty)
	if err != nil {
		return fmt.Errorf("hand breach %s to the responder: %w", id, err)
	}
	if t == nil && !r.inBlock {
		gone, err := r.blockGone(ctx, d.block)
		if err != nil {
			return fmt.Errorf("hand breach %s to the responder: %w", id, err)
		}
		if gone {
			log.Warn("queued hand-over dropped: its dispute's block left the chain; watching the appointment again",
				"locator", a.Locator, "uuid", id, "dispute_txid", d.txid, "block_hash", d.block)
			r.done[id] = true
			return nil
		}
	}
	r.done[id] = true
	if t == nil {
		log.Info("triggered appointment is invalid, deleting it", "locator", a.Locator, "uuid", id,
			"dispute_txid", d.txid, "reason", "penalty rejected")
		r.invalid(id, a)
		return nil
	}
	r.changes.Trackers = append(r.changes.Trackers, t)
	r.seen(id, a)
	return nil
}

// blockGone reports whether a queued hand-over's block left bitcoind's best chain. A block
// that left it while teosd was down is never disconnected after the restart if the persisted
// tip was below it (a crash, or a new PostgreSQL leader): its penalty is then refused, the
// dispute being gone, and the appointment must stay watched rather than be deleted
// (docs/PROTOCOL.md 8.5).
func (r *run) blockGone(ctx context.Context, block chainhash.Hash) (bool, error) {
	in, err := r.w.responder.BlockInChain(ctx, block)
	return !in, err
}

// invalid deletes an appointment whose breach cannot be answered (its blob does not decrypt,
// its penalty is rejected). Found in a block, its slots are refunded, as rust-teos v0.2 does;
// found when it was added (a late appointment, drained from the queue), they are not, as there.
func (r *run) invalid(id teos.UUID, a *store.Appointment) {
	if r.inBlock {
		r.changes.Invalid = append(r.changes.Invalid, id)
	} else {
		r.changes.Dropped = append(r.changes.Dropped, id)
	}
	r.seen(id, a)
}

// commit writes the run's changes in one transaction.
func (r *run) commit() error {
	if err := r.w.store.ApplyChanges(&r.changes); err != nil {
		return fmt.Errorf("commit hand-overs: %w", err)
	}
	return nil
}

var errNoResponder = errors.New("watcher has no responder")

// BlockDisconnected drops the block from the locator cache, and the queued hand-overs whose
// dispute it held: those appointments stay stored and trigger again if the dispute is mined
// again. The drop is a write transaction, so it also removes a hand-over an add queued from
// the cache just before the block left it.
func (w *Watcher) BlockDisconnected(_ context.Context, header *wire.BlockHeader, height uint32) error {
	hash := header.BlockHash()
	w.mu.Lock()
	_, cached := w.cache.remove(hash)
	w.mu.Unlock()
	n, err := w.store.DropHandOvers(hash)
	if err != nil {
		return fmt.Errorf("watcher disconnect %d: %w", height, err)
	}
	if n > 0 {
		w.log.Info("queued hand-overs dropped: their dispute left the chain", "count", n, "height", height)
	}
	if cached {
		w.log.Debug("block removed from the locator cache", "height", height)
	}
	return nil
}

// SeedBlock caches a block's locators without looking for breaches. At start-up, feed it the
// newest CacheBlocks blocks, oldest first. (A shared database's follower feeds it each block.)
func (w *Watcher) SeedBlock(block *wire.MsgBlock) {
	hash := block.BlockHash()
	txs, _ := indexBlock(block, hash)
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.cache.add(hash, txs); old != nil && len(w.inflight) > 0 {
		w.keepEvicted(old) // as cacheBlock: the writes in flight still need the evicted disputes
	}
}

// ResetCache empties the locator cache; SeedBlock fills it again. For a new chain monitor that
// starts from a persisted tip: the last one may have cached a block it never finished.
func (w *Watcher) ResetCache() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cache = locatorCache{}
}
