package watcher

import (
	"bytes"
	"slices"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
)

// CacheBlocks is how many recent blocks the locator cache keeps (rust-teos's locator cache).
const CacheBlocks = 6

// disputeTx is a mined transaction that may be a dispute, with its txid (internal order) and
// the block that holds it.
type disputeTx struct {
	txid  chainhash.Hash
	tx    *wire.MsgTx
	block chainhash.Hash
}

// serialize returns the transaction's consensus serialization.
func (d disputeTx) serialize() []byte {
	var buf bytes.Buffer
	buf.Grow(d.tx.SerializeSize())
	_ = d.tx.Serialize(&buf) // a bytes.Buffer never fails
	return buf.Bytes()
}

type cachedBlock struct {
	hash chainhash.Hash
	txs  map[teos.Locator]disputeTx
}

// locatorCache maps the locators of the last CacheBlocks blocks to their transactions, so an
// appointment that arrives just after its dispute was mined can still be handled. It is not
// safe for concurrent use: the Watcher guards it with its mutex.
type locatorCache struct {
	blocks []cachedBlock // oldest first
}

// indexBlock computes every transaction's txid and locator. locs is in block order.
func indexBlock(block *wire.MsgBlock, hash chainhash.Hash) (txs map[teos.Locator]disputeTx, locs []teos.Locator) {
	txs = make(map[teos.Locator]disputeTx, len(block.Transactions))
	locs = make([]teos.Locator, 0, len(block.Transactions))
	for _, tx := range block.Transactions {
		txid := tx.TxHash()
		loc := teos.NewLocator(txid)
		txs[loc] = disputeTx{txid: txid, tx: tx, block: hash}
		locs = append(locs, loc)
	}
	return txs, locs
}

// add caches a block's transactions and returns the transactions of the block it evicted, if
// any. Adding a block that is already cached replaces it in place, so a block processed again
// after an error does not evict another one.
func (c *locatorCache) add(hash chainhash.Hash, txs map[teos.Locator]disputeTx) (evicted map[teos.Locator]disputeTx) {
	for i := range c.blocks {
		if c.blocks[i].hash == hash {
			c.blocks[i].txs = txs
			return nil
		}
	}
	if len(c.blocks) == CacheBlocks {
		evicted = c.blocks[0].txs
		c.blocks = slices.Delete(c.blocks, 0, 1) // zeroes the freed slot, so the block can be collected
	}
	c.blocks = append(c.blocks, cachedBlock{hash: hash, txs: txs})
	return evicted
}

// remove drops a block and returns its transactions; ok is false if it was not cached.
func (c *locatorCache) remove(hash chainhash.Hash) (txs map[teos.Locator]disputeTx, ok bool) {
	for i := range c.blocks {
		if c.blocks[i].hash == hash {
			txs = c.blocks[i].txs
			c.blocks = slices.Delete(c.blocks, i, i+1)
			return txs, true
		}
	}
	return nil, false
}

// get returns the cached transaction with locator loc, newest block first.
func (c *locatorCache) get(loc teos.Locator) (disputeTx, bool) {
	for i := len(c.blocks) - 1; i >= 0; i-- {
		if d, ok := c.blocks[i].txs[loc]; ok {
			return d, true
		}
	}
	return disputeTx{}, false
}
