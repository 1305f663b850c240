package responder

import (
	"context"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
)

// fakeChain is bitcoind's best chain as the test sets it: a block per height, the tip the
// highest.
type fakeChain struct {
	mu      sync.Mutex
	blocks  map[uint32]*wire.MsgBlock
	tip     uint32
	down    bool
	lookups int // InBlockAt calls
}

func (c *fakeChain) Tip(context.Context) (chainhash.Hash, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return chainhash.Hash{}, 0, errDown
	}
	return c.blocks[c.tip].BlockHash(), c.tip, nil
}

func (c *fakeChain) InBlockAt(_ context.Context, txid chainhash.Hash, height uint32) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookups++
	if c.down {
		return false, errDown
	}
	b, ok := c.blocks[height]
	return ok && contains(b, txid), nil
}

func (c *fakeChain) InBestChain(_ context.Context, hash chainhash.Hash) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return false, errDown
	}
	for _, b := range c.blocks {
		if b.BlockHash() == hash {
			return true, nil
		}
	}
	return false, nil
}

// set makes b bitcoind's block at height and its tip, dropping the blocks above.
func (c *fakeChain) set(height uint32, b *wire.MsgBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocks == nil {
		c.blocks = make(map[uint32]*wire.MsgBlock)
	}
	for h := range c.blocks {
		if h > height {
			delete(c.blocks, h)
		}
	}
	c.blocks[height], c.tip = b, height
}

func newChainEnv(t *testing.T) (*env, *fakeChain) {
	e := newEnv(t)
	c := &fakeChain{}
	c.set(startHeight, block(startHeight, 0))
	e.r = New(Config{Store: e.store, Carrier: e.carrier, Chain: c}, startHeight)
	return e, c
}

// mine makes a block bitcoind's tip and hands it to the responder.
func (e *env) mine(t *testing.T, c *fakeChain, height uint32, variant byte, txs ...*wire.MsgTx) {
	t.Helper()
	b := block(height, variant, txs...)
	c.set(height, b)
	if err := e.r.BlockConnected(t.Context(), b, height); err != nil {
		t.Fatalf("BlockConnected(%d): %v", height, err)
	}
}

// At bitcoind's tip, a re-sent penalty's -25 with its dispute on the chain still drops the
// tracker, refunding the slots; while bitcoind cannot say where its tip is, nothing is decided.
func TestMissingInputsAtTipStillDrops(t *testing.T) {
	e, c := newChainEnv(t)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.handle(t, b)
	e.mine(t, c, startHeight+1, 0, b.dispute)
	e.mine(t, c, startHeight+2, 0, b.penalty)
	e.wantStatus(t, b, startHeight+2, true)

	if err := e.r.BlockDisconnected(t.Context(), nil, startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.carrier.script(b.penalty, missingInputs)
	replaced := block(startHeight+2, 1)
	c.set(startHeight+2, replaced)
	c.down = true
	if err := e.r.BlockConnected(t.Context(), replaced, startHeight+2); err == nil {
		t.Fatal("BlockConnected decided without knowing bitcoind's tip")
	}
	e.wantStatus(t, b, startHeight+2, true)
	c.down = false
	e.carrier.ClearCache()
	if err := e.r.BlockConnected(t.Context(), replaced, startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded)", got, slots+1)
	}
}

// A tracker confirmed above the block being processed, after a restart: bitcoind is asked once
// whether its chain still holds the penalty there, not at every block up to it. When it does
// not (that block was replaced while the tower was down), the penalty is re-sent at once.
func TestConfirmedAboveAskedOnce(t *testing.T) {
	e, c := newChainEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.mine(t, c, startHeight+1, 0, b.dispute)
	for h := uint32(startHeight + 2); h <= startHeight+4; h++ {
		e.mine(t, c, h, 0)
	}
	e.carrier.script(b.penalty, inChain) // mined at +5: bitcoind says -27 from now on
	e.mine(t, c, startHeight+5, 0, b.penalty)
	e.mine(t, c, startHeight+6, 0)
	e.wantStatus(t, b, startHeight+5, true)
	e.carrier.takeSent()

	restart := func() {
		e.r = New(Config{Store: e.store, Carrier: e.carrier, Chain: c}, startHeight)
		c.lookups = 0
	}
	restart()
	for h := uint32(startHeight + 1); h <= startHeight+6; h++ {
		if err := e.r.BlockConnected(t.Context(), c.blocks[h], h); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(t, b, startHeight+5, true)
	}
	if c.lookups != 1 {
		t.Fatalf("bitcoind asked %d times, want once", c.lookups)
	}
	e.wantSent(t)

	// While the tower is down again, bitcoind replaces the blocks from +5 with ones without the
	// penalty, which it takes back into its mempool.
	restart()
	c.set(startHeight+5, block(startHeight+5, 1))
	c.set(startHeight+6, block(startHeight+6, 1))
	e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusInMempool})
	if err := e.r.BlockConnected(t.Context(), c.blocks[startHeight+1], startHeight+1); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.penalty) // the dispute is in the block at hand
	e.wantStatus(t, b, startHeight+1, false)
}

// A penalty answered -25 on its first broadcast, with bitcoind's tip the watcher's block and
// the penalty not in it, is rejected; while bitcoind cannot say where its tip is, nothing is
// decided.
func TestHandleBreachMissingInputsAtTipRejected(t *testing.T) {
	e, c := newChainEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.script(b.penalty, missingInputs)
	c.set(startHeight+1, block(startHeight+1, 0, b.dispute))
	c.down = true
	if _, err := e.r.HandleBreach(t.Context(), b.id, b.dispute, b.penalty); err == nil {
		t.Fatal("HandleBreach decided without knowing bitcoind's tip")
	}
	c.down = false
	e.carrier.ClearCache()
	if e.handle(t, b) {
		t.Fatal("penalty with missing inputs accepted at bitcoind's tip")
	}
}

// A -25 left undecided while bitcoind was ahead is decided as soon as the tower reaches
// bitcoind's tip, not 6 blocks later: here the penalty is in none of the new blocks, so the
// tracker is dropped at the tip.
func TestMissingInputsDecidedAtTip(t *testing.T) {
	e, c := newChainEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.mine(t, c, startHeight+1, 0, b.dispute)
	e.mine(t, c, startHeight+2, 0, b.penalty)
	if err := e.r.BlockDisconnected(t.Context(), nil, startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.carrier.script(b.penalty, missingInputs)
	e.carrier.takeSent()
	c.set(startHeight+2, block(startHeight+2, 1))
	c.set(startHeight+3, block(startHeight+3, 1))
	if err := e.r.BlockConnected(t.Context(), c.blocks[startHeight+2], startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.penalty) // the dispute is in the index
	e.wantStatus(t, b, startHeight+2, false)
	if err := e.r.BlockConnected(t.Context(), c.blocks[startHeight+3], startHeight+3); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.penalty)
	e.wantGone(t, b)
}
