package carrier

import (
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
)

// The chain questions the responder asks: an RPC error is an answer (no such block in the best
// chain), a node that cannot be reached is an error, so nothing is decided on it.
func TestChainLookups(t *testing.T) {
	n, srv := newNode(t)
	c := New(clientFor(t, srv), nil)
	ctx := t.Context()
	block := chainhash.Hash{7}

	n.set("getblockheader", rpcErr(-1)) // btcd's answer for a block off the best chain
	if in, err := c.InBestChain(ctx, block); err != nil || in {
		t.Fatalf("InBestChain of a side-chain block = %v, %v; want false", in, err)
	}
	n.set("getblockheader", ok(map[string]any{"height": 120}))
	n.set("getblockhash", ok(chainhash.Hash{8}.String()))
	if in, err := c.InBestChain(ctx, block); err != nil || in {
		t.Fatalf("InBestChain with another block at its height = %v, %v; want false", in, err)
	}
	n.set("getblockhash", ok(block.String()))
	if in, err := c.InBestChain(ctx, block); err != nil || !in {
		t.Fatalf("InBestChain of the block at its height = %v, %v; want true", in, err)
	}

	n.set("getblockhash", rpcErr(-8)) // bitcoind: height out of range
	if in, err := c.InBlockAt(ctx, chainhash.Hash{1}, 200); err != nil || in {
		t.Fatalf("InBlockAt above the tip = %v, %v; want false", in, err)
	}

	n.set("getbestblockhash", ok(block.String()))
	if hash, height, err := c.Tip(ctx); err != nil || hash != block || height != 120 {
		t.Fatalf("Tip = %s, %d, %v; want %s, 120", hash, height, err, block)
	}

	n.setDown(true)
	if _, err := c.InBestChain(ctx, block); err == nil {
		t.Fatal("InBestChain with bitcoind down: no error")
	}
	if _, err := c.InBlockAt(ctx, chainhash.Hash{1}, 100); err == nil {
		t.Fatal("InBlockAt with bitcoind down: no error")
	}
	if _, _, err := c.Tip(ctx); err == nil {
		t.Fatal("Tip with bitcoind down: no error")
	}
}
