package carrier

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
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

// Many look-ups in one block (a block whose many penalties get -25) fetch it once: its txids
// are kept by block hash, which names its content.
func TestInBlockAtFetchesABlockOnce(t *testing.T) {
	n, srv := newNode(t)
	c := New(clientFor(t, srv), nil)
	block := wire.NewMsgBlock(wire.NewBlockHeader(1, &chainhash.Hash{}, &chainhash.Hash{}, 0, 7))
	var txids []chainhash.Hash
	for i := range 3 {
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{byte(i + 1)}, 0), nil, nil))
		tx.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
		block.AddTransaction(tx)
		txids = append(txids, tx.TxHash())
	}
	var raw bytes.Buffer
	if err := block.Serialize(&raw); err != nil {
		t.Fatal(err)
	}
	n.set("getblockhash", ok(block.BlockHash().String()))
	n.set("getblock", ok(hex.EncodeToString(raw.Bytes())))
	for round := range 2 {
		for _, id := range append(txids, chainhash.Hash{9}) {
			in, err := c.InBlockAt(t.Context(), id, 100)
			if err != nil || in != (id != chainhash.Hash{9}) {
				t.Fatalf("round %d: InBlockAt(%s) = %v, %v", round, id, in, err)
			}
		}
	}
	if got := n.count("getblock"); got != 1 {
		t.Errorf("%d getblock calls for 8 look-ups in one block, want 1", got)
	}
}
