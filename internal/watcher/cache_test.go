package watcher

import (
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
)

func TestLocatorCache(t *testing.T) {
	var c locatorCache
	blocks := make([]*wire.MsgBlock, CacheBlocks+1)
	for i := range blocks {
		blocks[i] = wire.NewMsgBlock(wire.NewBlockHeader(1, &chainhash.Hash{}, &chainhash.Hash{}, 0, uint32(i)))
		blocks[i].AddTransaction(newTx(uint32(i)))
	}
	loc := func(i int) teos.Locator { return teos.NewLocator(blocks[i].Transactions[0].TxHash()) }
	add := func(i int) {
		txs, locs := indexBlock(blocks[i], blocks[i].BlockHash())
		if len(locs) != 1 || locs[0] != loc(i) {
			t.Fatalf("indexBlock locators %v, want [%s]", locs, loc(i))
		}
		c.add(blocks[i].BlockHash(), txs)
	}

	for i := range CacheBlocks {
		add(i)
	}
	add(0) // the same block again replaces it, evicting nothing
	for i := range CacheBlocks {
		d, ok := c.get(loc(i))
		if !ok || d.txid != blocks[i].Transactions[0].TxHash() || d.tx != blocks[i].Transactions[0] {
			t.Fatalf("block %d: get = %v, %v", i, d.txid, ok)
		}
	}

	add(CacheBlocks)
	if _, ok := c.get(loc(0)); ok {
		t.Error("the oldest block was not evicted")
	}
	if len(c.blocks) != CacheBlocks {
		t.Errorf("%d blocks cached, want %d", len(c.blocks), CacheBlocks)
	}

	if _, ok := c.remove(blocks[0].BlockHash()); ok {
		t.Error("removed a block that was not cached")
	}
	txs, ok := c.remove(blocks[3].BlockHash())
	if _, in := txs[loc(3)]; !ok || !in {
		t.Error("remove did not return the block's transactions")
	}
	if _, ok := c.get(loc(3)); ok {
		t.Error("a removed block is still found")
	}
	if _, ok := c.get(loc(4)); !ok {
		t.Error("removing one block lost another")
	}
}
