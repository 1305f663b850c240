// Package responder keeps a tracker for every penalty the watcher hands over: it broadcasts
// the penalty, follows its confirmations, re-sends it when it is stuck or reorganised out, and
// deletes the appointment (refunding its slots) once the penalty is irrevocably resolved
// (rust-teos responder.rs; docs/PROTOCOL.md section 8).
//
// Trackers live only in the store; the responder reloads them on every block (they are few)
// and keeps in memory just the last 100 blocks' txids. Its changes to a block's trackers are
// committed together, in one store transaction. HandleBreach, BlockConnected and
// BlockDisconnected are called from the chain goroutine only (the watcher's hand-overs run
// there too), so the height HandleBreach reads cannot move under it.
package responder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// Store is the part of the database the responder uses; *store.Store satisfies it.
type Store interface {
	Trackers() ([]*store.Tracker, error)
	ApplyChanges(c *store.Changes) error
}

// checkedTrackers is implemented by both store engines: it also reports the tracker records it
// skipped as unreadable, which the responder logs.
type checkedTrackers interface {
	TrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error)
}

// trackers lists the readable trackers, logging the unreadable ones: one damaged record must
// not stop every block, and so the chain.
func (r *Responder) trackers() ([]*store.Tracker, error) {
	c, ok := r.store.(checkedTrackers)
	if !ok {
		return r.store.Trackers()
	}
	out, bad, err := c.TrackersChecked()
	for _, b := range bad {
		if r.unreadable[b.UUID] {
			continue
		}
		if r.unreadable == nil {
			r.unreadable = make(map[teos.UUID]bool)
		}
		r.unreadable[b.UUID] = true
		r.log.Error("skipping a tracker record that cannot be read", "uuid", b.UUID, "err", b.Err)
	}
	return out, err
}

// Carrier broadcasts and looks up transactions; *carrier.Carrier satisfies it.
type Carrier interface {
	Send(ctx context.Context, tx *wire.MsgTx) (carrier.Result, error)
	InMempool(ctx context.Context, txid chainhash.Hash) (bool, error)
	ClearCache()
}

// Chain answers questions about bitcoind's best chain; *carrier.Carrier satisfies it.
type Chain interface {
	// Tip returns the hash and height of bitcoind's best block.
	Tip(ctx context.Context) (chainhash.Hash, uint32, error)
	// InBlockAt reports whether bitcoind's best chain holds txid in its block at height.
	InBlockAt(ctx context.Context, txid chainhash.Hash, height uint32) (bool, error)
	// InBestChain reports whether the block hash is in bitcoind's best chain.
	InBestChain(ctx context.Context, hash chainhash.Hash) (bool, error)
}

// Config wires a responder to its collaborators.
type Config struct {
	Store   Store
	Carrier Carrier
	// Chain defaults to Carrier when it satisfies Chain (the production carrier does). Without
	// one (unit-test fakes), a tracker confirmed above the block being processed is taken for
	// a reorg, and a -25 is decided at once, as before the two checks existed.
	Chain  Chain
	Logger *slog.Logger
}

// Responder tracks broadcast penalties until they are irrevocably resolved.
type Responder struct {
	store   Store
	carrier Carrier
	chain   Chain // may be nil
	log     *slog.Logger
	height  atomic.Uint32 // last processed block
	index   *txIndex
	// unreadable holds the damaged tracker records already logged: once each, not every block.
	// Only the chain goroutine reads trackers.
	unreadable map[teos.UUID]bool
	blockHash  chainhash.Hash // of the block BlockConnected is processing
	// undecided holds the unconfirmed trackers whose penalty got -25 while bitcoind was ahead
	// of the tower: sent again once the tower reaches bitcoind's tip, not 6 blocks later. Lost
	// on a restart, when they wait for the 6 blocks.
	undecided map[teos.UUID]bool
	// seenAt memoises, by penalty txid, that bitcoind's best chain held the penalty at the
	// height its tracker is confirmed at, above the block being processed (a block processed
	// again after a restart): asked once, not at every block up to it. Cleared when a block is
	// disconnected. Only the chain goroutine uses it.
	seenAt map[chainhash.Hash]uint32
}

// New returns a responder whose last processed block is at height. Seed its tx index with
// SeedBlock before the first block is connected.
func New(cfg Config, height uint32) *Responder {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Responder{store: cfg.Store, carrier: cfg.Carrier, chain: cfg.Chain, log: log.With("component", "responder"), index: newTxIndex()}
	if r.chain == nil {
		r.chain, _ = cfg.Carrier.(Chain)
	}
	r.height.Store(height)
	return r
}

// Height is the height of the last block the responder processed.
func (r *Responder) Height() uint32 { return r.height.Load() }

// SeedBlock adds a block's txids to the index of recent blocks; at start-up it is called for
// the last 100 blocks up to the tip.
func (r *Responder) SeedBlock(block *wire.MsgBlock, height uint32) { r.index.add(block, height) }

// HandleBreach broadcasts penalty, which spends dispute, for the appointment id (docs/PROTOCOL.md
// 8.2) and returns the tracker to store for it; the caller commits it with the rest of its
// block's changes (store.Changes). It returns nil when bitcoind rejected the penalty: the
// caller then deletes the appointment (refunded when a block found it, not when it was added late). A refusal that passes by itself
// (carrier.StatusRefusedForNow, e.g. the mempool's minimum fee rose) is not a rejection: the
// tracker is stored as unconfirmed and the penalty re-sent every 6 blocks (unlike rust-teos). An error (bitcoind unreachable) means
// nothing was decided: the caller retries later. The caller makes sure id has no tracker yet.
//
// "Now" is Height, the last block the responder processed: while the watcher handles the
// block at H that is H-1, as in rust-teos.
//
// Deliberate difference from rust-teos: when bitcoind answers that the penalty is already in
// the chain (-27), rust-teos leaves the appointment untracked until its user expires (docs/PROTOCOL.md
// 16.7). Here it is tracked, so the user sees dispute_responded and the tracker completes
// (refunding the slots) once irrevocably resolved. If the penalty is in a block the responder has
// indexed, it is confirmed there. Otherwise bitcoind is ahead of the tower (catching up after a
// restart, possibly by many blocks), and the tracker is stored as unconfirmed since now: the block
// that holds the penalty confirms it when the tower gets there, and if that block leaves the chain
// first, the penalty is re-sent after 6 blocks like any other. Dating it confirmed at a guessed
// height would take every block up to the real one for a reorg of it.
func (r *Responder) HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	if dispute == nil || penalty == nil {
		return nil, fmt.Errorf("handle breach %s: missing dispute or penalty", id)
	}
	// A broadcast result cached before this call may predate the block being handled: a
	// queued hand-over drained after the last block got -25 for a dispute that this block
	// now holds. Only bitcoind's answer now decides.
	r.carrier.ClearCache()
	height := r.Height()
	t := &store.Tracker{UUID: id, DisputeTxID: dispute.TxHash(), PenaltyTxID: penalty.TxHash()}
	var err error
	if t.DisputeTx, err = serialize(dispute); err != nil {
		return nil, fmt.Errorf("handle breach %s: dispute: %w", id, err)
	}
	if t.PenaltyTx, err = serialize(penalty); err != nil {
		return nil, fmt.Errorf("handle breach %s: penalty: %w", id, err)
	}

	if h, ok := r.index.height(t.PenaltyTxID); ok {
		t.Height, t.Confirmed = h, true
	} else {
		in, err := r.carrier.InMempool(ctx, t.PenaltyTxID)
		if err != nil {
			return nil, fmt.Errorf("handle breach %s: %w", id, err)
		}
		if in {
			t.Height = height
		} else {
			res, err := r.carrier.Send(ctx, penalty)
			if err != nil {
				return nil, fmt.Errorf("handle breach %s: %w", id, err)
			}
			switch res.Status {
			case carrier.StatusInMempool, carrier.StatusIrrevocablyResolved:
				t.Height = height
			case carrier.StatusRefusedForNow:
				// Tracked as unconfirmed: re-sent after 6 blocks like any stuck penalty.
				r.log.Warn("penalty refused for now; tracking it to send again", "uuid", id, "txid", t.PenaltyTxID, "reason", res.Reason)
				t.Height = height
			case carrier.StatusRejected:
				if res.Code == carrier.CodeVerifyError {
					// The penalty may be in a block bitcoind has and the tower has not
					// processed yet, its outputs spent: decided when the tower gets there.
					ahead, err := r.minedAhead(ctx, t.PenaltyTxID, height)
					if err != nil {
						return nil, fmt.Errorf("handle breach %s: %w", id, err)
					}
					if ahead {
						r.log.Warn("penalty refused for missing inputs while bitcoind is ahead of the tower; tracking it until the tower catches up",
							"uuid", id, "txid", t.PenaltyTxID, "height", height)
						t.Height = height
						r.markUndecided(id, true)
						break
					}
				}
				r.log.Warn("penalty rejected", "uuid", id, "txid", t.PenaltyTxID, "code", res.Code, "reason", res.Reason)
				return nil, nil
			default:
				return nil, fmt.Errorf("handle breach %s: carrier returned %v", id, res.Status)
			}
		}
	}
	r.log.Info("penalty sent", "uuid", id, "txid", t.PenaltyTxID, "height", t.Height, "confirmed", t.Confirmed)
	return t, nil
}

// BlockInChain reports whether bitcoind's best chain holds the block hash; the watcher asks it
// about a queued hand-over whose penalty was rejected (docs/PROTOCOL.md 8.5). Without a Chain
// it answers yes, which leaves the rejection standing.
func (r *Responder) BlockInChain(ctx context.Context, hash chainhash.Hash) (bool, error) {
	if r.chain == nil {
		return true, nil
	}
	return r.chain.InBestChain(ctx, hash)
}

// BlockConnected processes the block at height (docs/PROTOCOL.md 8.3): it records the block's
// txids, confirms trackers whose penalty it holds, completes those confirmed 100 blocks ago
// (deleting them with a slot refund), re-sends penalties whose block was reorganised out and
// penalties unconfirmed for 6 blocks, and finally clears the carrier's cache.
//
// The block's tracker changes are committed together, in one transaction, also when bitcoind
// becomes unreachable halfway: the returned error then lets the chain monitor run the same
// block again, and what was done is not redone (a completed tracker is gone, a re-sent one is
// dated at this height) while what was not is found again. If the commit itself fails, the
// redo repeats the re-sends, which is harmless.
//
// Reorganised trackers are found from the store rather than kept in memory, so the set
// survives retries and restarts: a tracker confirmed at height whose penalty is not in this
// block lost its confirmation. One confirmed above height may have lost it (a reorg) or not (the
// blocks since the persisted tip processed again after a crash); leftChain asks bitcoind.
func (r *Responder) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	defer r.carrier.ClearCache()
	r.index.add(block, height)
	r.height.Store(height)
	r.blockHash = block.BlockHash()

	trackers, err := r.trackers()
	if err != nil {
		return fmt.Errorf("responder block %d: %w", height, err)
	}

	var (
		changes                        store.Changes
		reorged, stale, above, waiting []*store.Tracker
	)
	for _, t := range trackers {
		// The index already holds this block's txids: no second hashing pass.
		h, indexed := r.index.height(t.PenaltyTxID)
		mined := indexed && h == height
		switch {
		case mined:
			if t.Confirmed && t.Height == height {
				continue // this block was already processed once
			}
			setStatus(&changes, t, height, true)
			r.log.Info("penalty confirmed", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
		case t.Confirmed && t.Height == height:
			reorged = append(reorged, t) // this block replaced the one that held the penalty
		case t.Confirmed && t.Height > height:
			above = append(above, t)
		case t.Confirmed:
			if height-t.Height >= teos.IrrevocablyResolved {
				changes.Completed = append(changes.Completed, t.UUID)
			}
		case t.Height <= height && height-t.Height >= teos.ConfirmationsBeforeRetry:
			stale = append(stale, t)
		case r.undecided[t.UUID]:
			waiting = append(waiting, t)
		default:
			r.log.Debug("penalty not confirmed yet", "uuid", t.UUID, "txid", t.PenaltyTxID, "since", t.Height)
		}
	}

	r.keepUndecided(trackers)
	gone, err := r.leftChain(ctx, above, height)
	if err == nil {
		var now []*store.Tracker
		if now, err = r.decideAtTip(ctx, waiting, height); err == nil {
			err = r.resend(ctx, &changes, append(reorged, gone...), append(stale, now...), height)
		}
	}
	basedOnTrackers(&changes)
	if cerr := r.store.ApplyChanges(&changes); cerr != nil {
		return errors.Join(err, fmt.Errorf("responder block %d: %w", height, cerr))
	}
	if err != nil {
		return fmt.Errorf("responder block %d: %w", height, err)
	}
	for _, id := range changes.Completed {
		r.log.Info("tracker completed", "uuid", id, "height", height)
	}
	return nil
}

// leftChain returns the trackers of above (confirmed above height) whose confirmation was
// reorganised out. The responder may process a block again, below one it processed before,
// after a reorg or after a restart: the tip is persisted after the trackers, so after a crash
// the blocks since the persisted tip are processed again. bitcoind tells the two apart: if its
// best chain still holds the penalty at the tracker's height, the confirmation stands and the
// block at that height confirms it again when the tower gets there (or, if that block is
// replaced meanwhile, finds it reorganised out). Otherwise the penalty is re-sent now.
func (r *Responder) leftChain(ctx context.Context, above []*store.Tracker, height uint32) ([]*store.Tracker, error) {
	for txid, h := range r.seenAt {
		if h <= height {
			delete(r.seenAt, txid)
		}
	}
	if r.chain == nil {
		return above, nil
	}
	var gone []*store.Tracker
	for _, t := range above {
		if h, ok := r.seenAt[t.PenaltyTxID]; ok && h == t.Height {
			continue
		}
		in, err := r.chain.InBlockAt(ctx, t.PenaltyTxID, t.Height)
		if err != nil {
			return nil, fmt.Errorf("look for the penalty of %s at %d: %w", t.UUID, t.Height, err)
		}
		if !in {
			r.log.Warn("penalty confirmation reorganised out", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", t.Height)
			gone = append(gone, t)
			continue
		}
		if r.seenAt == nil {
			r.seenAt = make(map[chainhash.Hash]uint32)
		}
		r.seenAt[t.PenaltyTxID] = t.Height
		r.log.Info("penalty still confirmed in a block processed before; processing the blocks below it again",
			"uuid", t.UUID, "txid", t.PenaltyTxID, "confirmed_at", t.Height, "height", height)
	}
	return gone, nil
}

// keepUndecided forgets the undecided marks (see rebroadcast) of trackers that are gone or
// confirmed.
func (r *Responder) keepUndecided(trackers []*store.Tracker) {
	if len(r.undecided) == 0 {
		return
	}
	still := make(map[teos.UUID]bool, len(r.undecided))
	for _, t := range trackers {
		if r.undecided[t.UUID] && !t.Confirmed {
			still[t.UUID] = true
		}
	}
	r.undecided = still
}

// decideAtTip returns the trackers of waiting (left undecided by a -25 while bitcoind was
// ahead) to send again now, if the tower has reached bitcoind's tip: the -25 is then decided.
// Otherwise they keep waiting, for the block holding the penalty or for the tip.
func (r *Responder) decideAtTip(ctx context.Context, waiting []*store.Tracker, height uint32) ([]*store.Tracker, error) {
	if len(waiting) == 0 {
		return nil, nil
	}
	ahead, err := r.bitcoindAhead(ctx, height, &r.blockHash)
	if err != nil || ahead {
		return nil, err
	}
	return waiting, nil
}

// bitcoindAhead reports whether bitcoind's best chain goes past the tower's: past the block at
// height whose hash is hash, or, hash unknown, above height. Without a Chain it says no.
func (r *Responder) bitcoindAhead(ctx context.Context, height uint32, hash *chainhash.Hash) (bool, error) {
	if r.chain == nil {
		return false, nil
	}
	tip, tipHeight, err := r.chain.Tip(ctx)
	if err != nil {
		return false, err
	}
	if hash != nil {
		return tip != *hash, nil
	}
	return tipHeight > height, nil
}

// belowIndex reports whether a transaction bitcoind calls already in the chain (-27) and that
// is in no indexed block has at least 100 confirmations: the index holds each of the last 100
// blocks up to height, and bitcoind's best chain ends at the block being processed, so the
// transaction's block is below them. Without a Chain it says no, and the tracker waits.
func (r *Responder) belowIndex(ctx context.Context, height uint32) (bool, error) {
	if r.chain == nil || !r.index.full(height) {
		return false, nil
	}
	ahead, err := r.bitcoindAhead(ctx, height, &r.blockHash)
	return !ahead, err
}

// minedAhead reports whether bitcoind may hold txid in a block above height, the responder's
// last block: its chain goes past the block after height (the watcher's), or that block holds
// txid (the watcher hands over before the responder indexes the block).
func (r *Responder) minedAhead(ctx context.Context, txid chainhash.Hash, height uint32) (bool, error) {
	if r.chain == nil {
		return false, nil
	}
	ahead, err := r.bitcoindAhead(ctx, height+1, nil)
	if err != nil || ahead {
		return ahead, err
	}
	return r.chain.InBlockAt(ctx, txid, height+1)
}

// basedOnTrackers marks every change as made on its UUID's tracker: if the appointment was
// deleted (its user expired) and added again before the commit, the new one has no tracker
// and is left alone, rather than deleted or given the old tracker.
func basedOnTrackers(c *store.Changes) {
	if c.Empty() {
		return
	}
	c.Basis = make(map[teos.UUID]store.Basis, len(c.Trackers)+len(c.Completed)+len(c.Dropped))
	for _, t := range c.Trackers {
		c.Basis[t.UUID] = store.Basis{Tracked: true}
	}
	for _, ids := range [][]teos.UUID{c.Completed, c.Dropped, c.Invalid, c.Untracked} {
		for _, id := range ids {
			c.Basis[id] = store.Basis{Tracked: true}
		}
	}
}

// resend re-sends the reorganised trackers, then the stale ones, recording the outcomes in
// changes; it stops at the first transport error.
func (r *Responder) resend(ctx context.Context, changes *store.Changes, reorged, stale []*store.Tracker, height uint32) error {
	for _, t := range reorged {
		if err := r.resendReorged(ctx, changes, t, height); err != nil {
			return err
		}
	}
	for _, t := range stale {
		if err := r.resendStale(ctx, changes, t, height); err != nil {
			return err
		}
	}
	return nil
}

// BlockDisconnected forgets the block at height (docs/PROTOCOL.md 8.5). Trackers confirmed in it
// are re-sent when the next block is connected.
//
// Unlike rust-teos (docs/PROTOCOL.md 16.9), Height becomes height-1, the last block still in
// the chain.
func (r *Responder) BlockDisconnected(_ context.Context, _ *wire.BlockHeader, height uint32) error {
	r.index.remove(height)
	clear(r.seenAt)
	if height > 0 {
		r.height.Store(height - 1)
	}
	trackers, err := r.trackers()
	if err != nil {
		return fmt.Errorf("responder disconnect %d: %w", height, err)
	}
	for _, t := range trackers {
		if t.Confirmed && t.Height == height {
			r.log.Warn("penalty confirmation reorganised out", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
		}
	}
	return nil
}

// resendReorged re-sends the dispute and then the penalty of a tracker whose confirming block
// left the chain. A rejected dispute is not the end: bitcoind also rejects a dispute that is
// still in the chain once its outputs are spent (-25), so the penalty decides (rebroadcast).
func (r *Responder) resendReorged(ctx context.Context, changes *store.Changes, t *store.Tracker, height uint32) error {
	dispute, err := deserialize(t.DisputeTx)
	if err != nil {
		r.log.Error("cannot decode stored dispute", "uuid", t.UUID, "err", err)
		return nil
	}
	onChain, err := r.sendDispute(ctx, t, dispute)
	if err != nil {
		return err
	}
	return r.rebroadcast(ctx, changes, t, height, onChain)
}

// resendStale re-sends the dispute and then the penalty of a tracker unconfirmed for 6 blocks:
// the dispute's block may have left the chain without bitcoind taking the dispute back into
// its mempool (a fee below its minimum, a deep reorg), and then the penalty alone is refused.
func (r *Responder) resendStale(ctx context.Context, changes *store.Changes, t *store.Tracker, height uint32) error {
	onChain := false
	if dispute, err := deserialize(t.DisputeTx); err != nil {
		r.log.Error("cannot decode stored dispute", "uuid", t.UUID, "err", err)
	} else if onChain, err = r.sendDispute(ctx, t, dispute); err != nil {
		return err
	}
	return r.rebroadcast(ctx, changes, t, height, onChain)
}

// sendDispute sends a tracker's dispute unless it is in a block the tower indexes, and reports
// whether the dispute is on the chain: indexed, or answered "already in the chain" (-27).
func (r *Responder) sendDispute(ctx context.Context, t *store.Tracker, dispute *wire.MsgTx) (bool, error) {
	if _, ok := r.index.height(t.DisputeTxID); ok {
		return true, nil
	}
	res, err := r.carrier.Send(ctx, dispute)
	if err != nil {
		return false, fmt.Errorf("re-send dispute of %s: %w", t.UUID, err)
	}
	switch res.Status {
	case carrier.StatusIrrevocablyResolved:
		return true, nil
	case carrier.StatusRejected, carrier.StatusRefusedForNow:
		r.log.Info("dispute refused on re-send; trying the penalty", "uuid", t.UUID, "txid", t.DisputeTxID, "code", res.Code, "reason", res.Reason)
	}
	return false, nil
}

// rebroadcast re-sends a tracker's penalty and records the outcome: in the mempool since
// height, confirmed or completed (already in the chain, docs/PROTOCOL.md 16.8), waiting since height after a
// refusal that passes by itself, or deleted with its slots refunded (as rust-teos v0.2 does). A penalty refused for missing
// inputs (-25) while its dispute is not on the chain (disputeOnChain, see sendDispute) is not
// invalid: the breach left the chain. Only its tracker is deleted; the appointment is watched
// again and triggers anew if the cheater gets the dispute mined later (docs/PROTOCOL.md 8.5).
func (r *Responder) rebroadcast(ctx context.Context, changes *store.Changes, t *store.Tracker, height uint32, disputeOnChain bool) error {
	penalty, err := deserialize(t.PenaltyTx)
	if err != nil {
		r.log.Error("cannot decode stored penalty", "uuid", t.UUID, "err", err)
		return nil
	}
	res, err := r.carrier.Send(ctx, penalty)
	if err != nil {
		return fmt.Errorf("re-send penalty of %s: %w", t.UUID, err)
	}
	r.markUndecided(t.UUID, false) // unless the -25 below is left undecided again
	switch res.Status {
	case carrier.StatusInMempool:
		r.log.Info("penalty re-sent", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
		setStatus(changes, t, height, false)
		return nil
	case carrier.StatusIrrevocablyResolved:
		// rust-teos cannot store this status and would fail. In a block we indexed, the penalty
		// is confirmed there; below all of them, it is irrevocably resolved (belowIndex);
		// otherwise bitcoind is ahead of the tower, and the tracker waits, unconfirmed, for the
		// tower to reach the penalty's block (as in HandleBreach): confirming it here would
		// start its 100 blocks before the penalty has them.
		if h, ok := r.index.height(t.PenaltyTxID); ok {
			r.log.Info("penalty found in the chain", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", h)
			setStatus(changes, t, h, true)
			return nil
		}
		deep, err := r.belowIndex(ctx, height)
		if err != nil {
			return fmt.Errorf("re-send penalty of %s: %w", t.UUID, err)
		}
		if deep {
			// A block the tower skipped (--forceupdate) or never indexed: none it will reach.
			r.log.Info("penalty confirmed below the last 100 blocks: irrevocably resolved", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
			changes.Completed = append(changes.Completed, t.UUID)
			return nil
		}
		r.log.Info("penalty in a block the tower has not reached yet", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
		setStatus(changes, t, height, false)
		return nil
	case carrier.StatusRefusedForNow:
		// Kept and re-dated, so it is sent again in 6 blocks, until it confirms or its user expires.
		r.log.Warn("penalty refused for now on re-send; keeping tracker", "uuid", t.UUID, "txid", t.PenaltyTxID, "height", height, "reason", res.Reason)
		setStatus(changes, t, height, false)
		return nil
	case carrier.StatusRejected:
		if res.Code == carrier.CodeVerifyError {
			// bitcoind may hold the penalty, its outputs spent, in a block past the one
			// being processed (a catch-up, a reorg that replays it higher): decided once
			// the tower is at bitcoind's tip, where the block holding it confirms it first.
			ahead, err := r.bitcoindAhead(ctx, height, &r.blockHash)
			if err != nil {
				return fmt.Errorf("re-send penalty of %s: %w", t.UUID, err)
			}
			if ahead {
				r.log.Warn("penalty refused for missing inputs while bitcoind is ahead of the tower; deciding when the tower catches up",
					"uuid", t.UUID, "txid", t.PenaltyTxID, "height", height)
				setStatus(changes, t, height, false)
				r.markUndecided(t.UUID, true)
				return nil
			}
		}
		if res.Code == carrier.CodeVerifyError && !disputeOnChain {
			r.log.Warn("penalty's dispute is not on the chain; watching the appointment again", "uuid", t.UUID,
				"dispute_txid", t.DisputeTxID, "penalty_txid", t.PenaltyTxID, "height", height)
			changes.Untracked = append(changes.Untracked, t.UUID)
			return nil
		}
		r.log.Warn("penalty rejected on re-send; dropping tracker", "uuid", t.UUID, "txid", t.PenaltyTxID, "code", res.Code, "reason", res.Reason)
		changes.Invalid = append(changes.Invalid, t.UUID) // refunded, as rust-teos v0.2 does
		return nil
	}
	return fmt.Errorf("re-send penalty of %s: carrier returned %v", t.UUID, res.Status)
}

func (r *Responder) markUndecided(id teos.UUID, undecided bool) {
	if !undecided {
		delete(r.undecided, id)
		return
	}
	if r.undecided == nil {
		r.undecided = make(map[teos.UUID]bool)
	}
	r.undecided[id] = true
}

// setStatus records t as confirmed at, or in the mempool since, height. An appointment
// deleted meanwhile (its user expired) is skipped when the changes are applied.
func setStatus(changes *store.Changes, t *store.Tracker, height uint32, confirmed bool) {
	t.Height, t.Confirmed = height, confirmed
	changes.Trackers = append(changes.Trackers, t)
}

func serialize(tx *wire.MsgTx) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(tx.SerializeSize())
	if err := tx.Serialize(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func deserialize(b []byte) (*wire.MsgTx, error) {
	tx := new(wire.MsgTx)
	r := bytes.NewReader(b)
	if err := tx.Deserialize(r); err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the transaction", r.Len())
	}
	return tx, nil
}
