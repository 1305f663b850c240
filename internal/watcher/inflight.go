package watcher

import (
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
)

// A block's lookup must see every add (and deletion) that checked the locator cache before
// the block was in it: such a write neither queued a hand-over nor refused, so the lookup is
// the only thing that can find it. Rather than wait for every write in flight
// (Store.WaitWrites, which under load means waiting for an add batch's commit and fsync on
// every block), the watcher keeps the locators of the writes that have checked the cache and
// not yet finished; a block waits for the store only if one of them is in the block, which
// is rare (docs/PERFORMANCE.md, issue 13).
//
// A write marks its locator and checks the cache under w.mu in one step, inside its store
// transaction; the block is cached and the marks are read under w.mu in one step too. So
// either the write saw the block, or its mark was there when the block read the marks and
// the block waits for the write's transaction; or the mark was already gone, and then the
// write had committed (or rolled back) before the block's lookup began.

// inflightCheck returns the transaction with locator loc if it was mined in a cached block,
// for a write that has not finished: it also marks loc as in flight (once per write, whatever
// the number of attempts; *marked remembers it).
func (w *Watcher) inflightCheck(loc teos.Locator, marked *bool) (disputeTx, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*marked {
		if w.inflight == nil {
			w.inflight = make(map[teos.Locator]int)
		}
		w.inflight[loc]++
		*marked = true
	}
	return w.cache.get(loc)
}

// inflightDone removes the mark inflightCheck set, once the write's transaction is over.
func (w *Watcher) inflightDone(loc teos.Locator, marked *bool) {
	if !*marked {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight[loc] <= 1 {
		delete(w.inflight, loc)
	} else {
		w.inflight[loc]--
	}
	*marked = false
}

// cacheBlock caches a block's transactions and reports whether a write in flight checked one
// of its locators, in which case the block's lookup must wait for the writes in flight.
func (w *Watcher) cacheBlock(hash chainhash.Hash, txs map[teos.Locator]disputeTx) (racing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cache.add(hash, txs)
	for loc := range w.inflight {
		if _, ok := txs[loc]; ok {
			return true
		}
	}
	return false
}
