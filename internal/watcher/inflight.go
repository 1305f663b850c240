package watcher

import (
	"context"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
)

// A block's lookup must see every add (and deletion) that was in flight when the block was
// cached: such a write may check the locator cache only once the block has left it, so the
// lookup is the only thing that can find it. Rather than wait for every write in flight
// (under load, an add batch's commit and fsync on every block), the watcher keeps the
// locators of the writes in flight; a block waits only for the writes holding one of its
// locators, which is rare (docs/PERFORMANCE.md, issue 13).
//
// A write marks its locators before it reads its start height and clears them once the store
// call is over (committed or failed); the block is cached and the marks are read under w.mu in
// one step. So either the mark was there and the block waits for that write to be over before
// its lookup, or the mark came later: the write then reads a start height at or above the
// block's (the gatekeeper moves first) and checks the cache inside its transaction. Marking
// inside the transaction would not do: a write queued behind others while a catch-up connects
// CacheBlocks blocks past its dispute's finds the block neither in the cache nor marked.
// Conversely, a write marked after its dispute's block was cached (and looked up) may check the
// cache only once that block was evicted: the eviction hands the write the block's disputes
// for its locators (inflightWrite.evicted).

// inflightWrite is one store write in flight: an add, an add batch or a deletion.
type inflightWrite struct {
	locs []teos.Locator
	done chan struct{} // closed by endWrite
	// evicted holds the disputes of locs mined in blocks that left the locator cache while
	// the write was in flight; guarded by w.mu.
	evicted map[teos.Locator]disputeTx
}

// beginWrite marks locs in flight; endWrite must follow once the store call is over.
func (w *Watcher) beginWrite(locs []teos.Locator) *inflightWrite {
	iw := &inflightWrite{locs: locs, done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight == nil {
		w.inflight = make(map[teos.Locator][]*inflightWrite)
	}
	for _, loc := range locs {
		w.inflight[loc] = append(w.inflight[loc], iw)
	}
	return iw
}

// endWrite clears iw's marks and releases the blocks waiting for it.
func (w *Watcher) endWrite(iw *inflightWrite) {
	w.mu.Lock()
	for _, loc := range iw.locs {
		list := w.inflight[loc]
		for i, x := range list {
			if x == iw {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.inflight, loc)
		} else {
			w.inflight[loc] = list
		}
	}
	w.mu.Unlock()
	close(iw.done)
}

// cachedDispute returns the transaction with locator loc if it was mined in a cached block,
// or in one evicted from the cache while iw, the write holding loc, was in flight.
func (w *Watcher) cachedDispute(iw *inflightWrite, loc teos.Locator) (disputeTx, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d, ok := w.cache.get(loc); ok {
		return d, true
	}
	d, ok := iw.evicted[loc]
	return d, ok
}

// cacheBlock caches a block's transactions and returns the writes in flight that hold one of
// its locators: the block's lookup must wait for them (waitWrites).
func (w *Watcher) cacheBlock(hash chainhash.Hash, txs map[teos.Locator]disputeTx) []*inflightWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old := w.cache.add(hash, txs); old != nil && len(w.inflight) > 0 {
		w.keepEvicted(old)
	}
	var racing []*inflightWrite // a write listed twice is waited for twice: harmless
	add := func(list []*inflightWrite) { racing = append(racing, list...) }
	// Walk the smaller of the two maps.
	if len(txs) < len(w.inflight) {
		for loc := range txs {
			add(w.inflight[loc])
		}
		return racing
	}
	for loc, list := range w.inflight {
		if _, ok := txs[loc]; ok {
			add(list)
		}
	}
	return racing
}

// keepEvicted gives the writes in flight the disputes of their locators in txs, a block
// leaving the locator cache: that block's lookup ran before they were marked, so they alone
// can find the breach. w.mu must be held.
func (w *Watcher) keepEvicted(txs map[teos.Locator]disputeTx) {
	keep := func(loc teos.Locator, d disputeTx, list []*inflightWrite) {
		for _, iw := range list {
			if iw.evicted == nil {
				iw.evicted = make(map[teos.Locator]disputeTx)
			}
			iw.evicted[loc] = d
		}
	}
	if len(txs) < len(w.inflight) {
		for loc, d := range txs {
			if list, ok := w.inflight[loc]; ok {
				keep(loc, d, list)
			}
		}
		return
	}
	for loc, list := range w.inflight {
		if d, ok := txs[loc]; ok {
			keep(loc, d, list)
		}
	}
}

// waitWrites returns once every write of list is over, or with ctx's error.
func waitWrites(ctx context.Context, list []*inflightWrite) error {
	for _, iw := range list {
		select {
		case <-iw.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
