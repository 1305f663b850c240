package responder

import (
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// deepEnv is a tower that skipped blocks (--forceupdate on a pruned node): b's tracker is
// unconfirmed since startHeight, its penalty was mined at startHeight+1 in a block the tower
// never saw, and the tower resumes at top with the last `seeded` blocks up to top indexed and
// bitcoind's chain ending there.
func deepEnv(t *testing.T, top, seeded uint32) (*env, *fakeChain, breach, uint32) {
	t.Helper()
	e, c := newChainEnv(t)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.handle(t, b)
	e.wantStatus(t, b, startHeight, false)
	e.carrier.takeSent()
	c.set(startHeight+1, block(startHeight+1, 0, b.penalty))
	for h := startHeight + 2; h <= int(top); h++ {
		c.set(uint32(h), block(uint32(h), 0))
	}
	e.r = New(Config{Store: e.store, Carrier: e.carrier, Chain: c}, top)
	for h := top + 1 - seeded; h <= top; h++ {
		e.r.SeedBlock(c.blocks[h], h)
	}
	e.carrier.script(b.penalty, inChain)
	return e, c, b, slots
}

// A stale penalty answered -27 in no indexed block, with the last 100 blocks indexed and
// bitcoind's chain ending at the block being processed, is at least 100 blocks deep: the
// tracker completes, refunding the slot. Before, it was re-dated and re-sent every 6 blocks,
// waiting for a block the tower had already passed, until its user expired.
func TestRebroadcastAlreadyInChainBelowIndexCompletes(t *testing.T) {
	top := uint32(startHeight + 2*teos.IrrevocablyResolved)
	e, c, b, slots := deepEnv(t, top, teos.IrrevocablyResolved)
	e.mine(t, c, top+1, 0)
	e.wantSent(t, b.dispute, b.penalty)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded)", got, slots+1)
	}
}

// While bitcoind's chain goes past the block being processed, the penalty's block may be one
// the tower has yet to reach: the tracker waits, as before.
func TestRebroadcastAlreadyInChainBitcoindAheadWaits(t *testing.T) {
	top := uint32(startHeight + 2*teos.IrrevocablyResolved)
	e, c, b, _ := deepEnv(t, top, teos.IrrevocablyResolved)
	next := block(top+1, 0)
	c.set(top+1, next)
	c.set(top+2, block(top+2, 0))
	if err := e.r.BlockConnected(t.Context(), next, top+1); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(t, b, top+1, false)
}

// An index with a gap (fewer than the last 100 blocks) cannot tell a deep block from a missing
// one: the tracker waits, as before.
func TestRebroadcastAlreadyInChainIndexGapWaits(t *testing.T) {
	top := uint32(startHeight + 2*teos.IrrevocablyResolved)
	e, c, b, _ := deepEnv(t, top, teos.IrrevocablyResolved-10)
	e.mine(t, c, top+1, 0)
	e.wantStatus(t, b, top+1, false)
}

// Without a Chain (nothing can say where bitcoind's tip is) the tracker waits, as before.
func TestRebroadcastAlreadyInChainNoChainWaits(t *testing.T) {
	top := uint32(startHeight + 2*teos.IrrevocablyResolved)
	e, c, b, _ := deepEnv(t, top, teos.IrrevocablyResolved)
	e.r.chain = nil
	e.mine(t, c, top+1, 0)
	e.wantStatus(t, b, top+1, false)
}
