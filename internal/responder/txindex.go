package responder

import (
	"sync"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
)

// txIndex maps the txids of the last teos.IrrevocablyResolved blocks to their heights.
type txIndex struct {
	mu       sync.Mutex
	byTxID   map[chainhash.Hash]uint32
	byHeight map[uint32][]chainhash.Hash
}

func newTxIndex() *txIndex {
	return &txIndex{byTxID: make(map[chainhash.Hash]uint32), byHeight: make(map[uint32][]chainhash.Hash)}
}

// add records block at height, replacing whatever was recorded there, and evicts blocks that
// are teos.IrrevocablyResolved or more below the highest one.
func (x *txIndex) add(block *wire.MsgBlock, height uint32) {
	txids := make([]chainhash.Hash, len(block.Transactions))
	for i, tx := range block.Transactions {
		txids[i] = tx.TxHash()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(height)
	x.byHeight[height] = txids
	for _, id := range txids {
		x.byTxID[id] = height
	}
	top := height
	for h := range x.byHeight {
		top = max(top, h)
	}
	for h := range x.byHeight {
		if h+teos.IrrevocablyResolved <= top {
			x.removeLocked(h)
		}
	}
}

// remove forgets the block recorded at height, if any.
func (x *txIndex) remove(height uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(height)
}

func (x *txIndex) removeLocked(height uint32) {
	for _, id := range x.byHeight[height] {
		// The same txid may sit in a later block too; only drop the entry for this one.
		if x.byTxID[id] == height {
			delete(x.byTxID, id)
		}
	}
	delete(x.byHeight, height)
}

// full reports whether the index holds every one of the teos.IrrevocablyResolved blocks up to
// top: a gap (the lowest heights after a reorg to a shorter chain) says nothing of them.
func (x *txIndex) full(top uint32) bool {
	if top+1 < teos.IrrevocablyResolved {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for h := top + 1 - teos.IrrevocablyResolved; h <= top; h++ {
		if _, ok := x.byHeight[h]; !ok {
			return false
		}
	}
	return true
}

// height returns the height of the indexed block holding txid.
func (x *txIndex) height(txid chainhash.Hash) (uint32, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	h, ok := x.byTxID[txid]
	return h, ok
}

func (x *txIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byHeight)
}
