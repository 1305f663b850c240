package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// maxRetries bounds the add-time retry list. It only fills if appointments for freshly mined
// disputes keep arriving while the responder fails, which the API's reachability check makes rare.
const maxRetries = 10_000

var errNoResponder = errors.New("watcher has no responder")

// retryItem is an add-time hand-over that failed transiently. The dispute is kept because it
// may leave the locator cache before the retry, and no later block will trigger the appointment.
type retryItem struct {
	locator teos.Locator
	dispute disputeTx
	seq     uint64 // tells a re-queued item from the one a block is settling
}

type pendingRetry struct {
	id teos.UUID
	retryItem
}

type outcome int

const (
	outcomeSkipped outcome = iota // already tracked
	outcomeTracked
	outcomeInvalid // undecryptable or rejected: delete without refund
)

// BlockConnected caches the block's locators, then hands every appointment it triggers (all
// users) to the responder, after first retrying add-time hand-overs that failed. Appointments
// whose blob is not a transaction encrypted under the dispute's txid, or whose penalty is
// rejected, are deleted without refund, as rust-teos does. A responder error stops the work and
// is returned once the invalid appointments are deleted: the chain monitor delivers the same
// block again, and the redo skips appointments that now have a tracker.
func (w *Watcher) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	txs, locs := indexBlock(block)
	w.mu.Lock()
	w.cache.add(block.BlockHash(), txs)
	w.mu.Unlock()

	// Claims are held until the invalid appointments are deleted and the retries forgotten.
	var claimed, invalid []teos.UUID
	defer func() { w.release(claimed) }()
	b := &blockRun{
		claim: func(id teos.UUID) bool {
			if !w.claim(id) {
				return false
			}
			claimed = append(claimed, id)
			return true
		},
		handOver: func(a *store.Appointment, id teos.UUID, d disputeTx) error {
			out, err := w.handOver(ctx, a, id, d)
			if out == outcomeInvalid {
				invalid = append(invalid, id)
			}
			return err
		},
	}

	retried, err := w.retryHandOvers(b)
	if err == nil {
		err = w.handleBreaches(txs, locs, b)
	}
	if len(invalid) > 0 {
		if derr := w.store.DeleteAppointments(invalid, false); derr != nil {
			return errors.Join(err, fmt.Errorf("delete %d invalid appointments at height %d: %w", len(invalid), height, derr))
		}
	}
	w.forgetRetries(retried)
	if err != nil {
		return fmt.Errorf("watcher at height %d: %w", height, err)
	}
	return nil
}

// blockRun is the work of one BlockConnected call.
type blockRun struct {
	// claim claims id for the rest of the call; false means AddAppointment is handing it over.
	claim func(id teos.UUID) bool
	// handOver hands a claimed appointment over and records it if invalid.
	handOver func(a *store.Appointment, id teos.UUID, d disputeTx) error
}

// handleBreaches looks all the block's locators up at once and hands each match over, in block order.
func (w *Watcher) handleBreaches(txs map[teos.Locator]disputeTx, locs []teos.Locator, b *blockRun) error {
	found, err := w.store.AppointmentsByLocators(locs)
	if err != nil {
		return fmt.Errorf("look up %d locators: %w", len(locs), err)
	}
	for _, loc := range locs {
		appts, ok := found[loc]
		if !ok {
			continue
		}
		delete(found, loc) // a repeated locator is handled once
		for _, a := range appts {
			// If AddAppointment holds the claim, it hands this one over or queues a retry.
			if id := a.UUID(); b.claim(id) {
				if err := b.handOver(a, id, txs[loc]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// retryHandOvers redoes the queued add-time hand-overs and returns those that are settled.
func (w *Watcher) retryHandOvers(b *blockRun) ([]pendingRetry, error) {
	w.mu.Lock()
	pending := make([]pendingRetry, 0, len(w.retry))
	for id, r := range w.retry {
		pending = append(pending, pendingRetry{id: id, retryItem: r})
	}
	w.mu.Unlock()
	slices.SortFunc(pending, func(x, y pendingRetry) int { return bytes.Compare(x.id[:], y.id[:]) })

	var settled []pendingRetry
	for _, p := range pending {
		if !b.claim(p.id) {
			continue // AddAppointment is handing it over, and settles or re-queues it
		}
		// Loaded under the claim, so an update stored meanwhile is the one handed over.
		a, err := w.store.Appointment(p.id)
		if errors.Is(err, store.ErrNotFound) { // deleted since (user outdated, or handled)
			settled = append(settled, p)
			continue
		}
		if err != nil {
			return settled, fmt.Errorf("load appointment %s: %w", p.id, err)
		}
		if err := b.handOver(a, p.id, p.dispute); err != nil {
			return settled, err
		}
		settled = append(settled, p)
	}
	return settled, nil
}

// forgetRetries removes settled items, unless an update queued a newer one meanwhile.
func (w *Watcher) forgetRetries(settled []pendingRetry) {
	if len(settled) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range settled {
		if cur, ok := w.retry[p.id]; ok && cur == p.retryItem {
			delete(w.retry, p.id)
		}
	}
}

// handOver decrypts a's penalty with the dispute's txid and gives the breach to the responder.
// The caller holds the claim on id. An error is transient: nothing was decided.
func (w *Watcher) handOver(ctx context.Context, a *store.Appointment, id teos.UUID, d disputeTx) (outcome, error) {
	if w.responder == nil {
		return outcomeSkipped, errNoResponder
	}
	_, err := w.store.Tracker(id)
	if err == nil {
		return outcomeSkipped, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return outcomeSkipped, fmt.Errorf("load tracker %s: %w", id, err)
	}
	penalty, err := wtcrypto.DecryptTx(a.EncryptedBlob, d.txid)
	if err != nil {
		w.log.Info("triggered appointment is invalid, deleting it", "locator", a.Locator, "uuid", id,
			"dispute_txid", d.txid, "reason", err)
		return outcomeInvalid, nil
	}
	w.log.Info("breach found", "locator", a.Locator, "uuid", id, "dispute_txid", d.txid, "penalty_txid", penalty.TxHash())
	tracked, err := w.responder.HandleBreach(ctx, id, d.tx, penalty)
	if err != nil {
		return outcomeSkipped, fmt.Errorf("hand breach %s to the responder: %w", id, err)
	}
	if !tracked {
		w.log.Info("triggered appointment is invalid, deleting it", "locator", a.Locator, "uuid", id,
			"dispute_txid", d.txid, "reason", "penalty rejected")
		return outcomeInvalid, nil
	}
	return outcomeTracked, nil
}

// handOverAtAdd handles an appointment stored after its dispute was mined (rust-teos
// add_appointment with a locator cache hit). An invalid one is deleted without refund. On a
// transient error the appointment stays stored and is queued for the next BlockConnected,
// since no later block will trigger it; the queue lives in memory, so a restart forgets it.
func (w *Watcher) handOverAtAdd(ctx context.Context, a *store.Appointment, d disputeTx) {
	id := a.UUID()
	if !w.claim(id) {
		// The chain goroutine is handing over a copy it may have read before this update:
		// queue a retry, which is a no-op if the UUID ends up tracked or deleted.
		w.queueRetry(id, a.Locator, d, nil)
		return
	}
	defer w.release([]teos.UUID{id})
	out, err := w.handOver(ctx, a, id, d)
	if err == nil && out == outcomeInvalid {
		if err = w.store.DeleteAppointments([]teos.UUID{id}, false); err != nil {
			err = fmt.Errorf("delete invalid appointment: %w", err) // the retry deletes it
		}
	}
	if err != nil {
		w.queueRetry(id, a.Locator, d, err)
		return
	}
	w.mu.Lock()
	delete(w.retry, id) // settled, whatever an earlier version left queued
	w.mu.Unlock()
}

// queueRetry asks the next BlockConnected to hand id over; cause is why it was not done now.
func (w *Watcher) queueRetry(id teos.UUID, loc teos.Locator, d disputeTx, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, queued := w.retry[id]; !queued && len(w.retry) >= maxRetries {
		w.log.Error("breach hand-over not done and the retry list is full; the appointment stays stored but unhandled",
			"locator", loc, "uuid", id, "err", cause)
		return
	}
	w.retrySeq++
	w.retry[id] = retryItem{locator: loc, dispute: d, seq: w.retrySeq}
	if cause != nil {
		w.log.Warn("breach hand-over failed, retrying at the next block", "locator", loc, "uuid", id, "err", cause)
	}
}

// BlockDisconnected drops the block from the locator cache, and the queued retries whose
// dispute it held: those appointments stay stored and trigger again if the dispute is re-mined.
func (w *Watcher) BlockDisconnected(_ context.Context, header *wire.BlockHeader, height uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	txs, ok := w.cache.remove(header.BlockHash())
	if !ok {
		return nil
	}
	for id, r := range w.retry {
		if d, ok := txs[r.locator]; ok && d.txid == r.dispute.txid {
			delete(w.retry, id)
		}
	}
	w.log.Debug("block removed from the locator cache", "height", height)
	return nil
}

// SeedBlock caches a block's locators without looking for breaches. At start-up, feed it the
// newest CacheBlocks blocks, oldest first.
func (w *Watcher) SeedBlock(block *wire.MsgBlock) {
	txs, _ := indexBlock(block)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cache.add(block.BlockHash(), txs)
}

// recentDispute returns the transaction with locator loc if it was mined in a cached block.
func (w *Watcher) recentDispute(loc teos.Locator) (disputeTx, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cache.get(loc)
}

// claim marks id as being handed over, so the chain goroutine and AddAppointment never hand
// the same UUID over at once; false means someone else holds it.
func (w *Watcher) claim(id teos.UUID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, busy := w.claimed[id]; busy {
		return false
	}
	w.claimed[id] = struct{}{}
	return true
}

func (w *Watcher) release(ids []teos.UUID) {
	if len(ids) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		delete(w.claimed, id)
	}
}
