package watcher

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/store"
)

// chainResponder is a fakeResponder that also says which blocks are in bitcoind's best chain,
// as the real responder does.
type chainResponder struct {
	*fakeResponder
	gone map[chainhash.Hash]bool
	down bool
}

func (r *chainResponder) BlockInChain(_ context.Context, hash chainhash.Hash) (bool, error) {
	if r.down {
		return false, errUnreachable
	}
	return !r.gone[hash], nil
}

// A late appointment whose penalty is rejected is deleted (without refund), unless the block
// its dispute was found in is no longer in bitcoind's best chain: then the queued hand-over
// is dropped and the appointment kept, watched again. While that cannot be asked, nothing is
// decided.
func TestQueuedHandOverRejectedBlockGone(t *testing.T) {
	for _, gone := range []bool{false, true} {
		resp := &chainResponder{fakeResponder: newFakeResponder(), gone: map[chainhash.Hash]bool{}}
		f, _ := newFixtureWith(t, func(*store.Store) Responder { return resp })
		u := f.newUser()
		b := newBreach(1)
		id := uuid(b.loc, u)
		resp.reject[id] = true
		block := f.connect(b.dispute)
		f.add(u, b.loc, b.blob)
		resp.gone[block.BlockHash()] = gone

		resp.down = true
		if err := f.w.HandOverQueued(t.Context()); err == nil {
			t.Fatal("HandOverQueued decided without knowing the chain")
		}
		if len(f.queued()) != 1 || !f.stored(id) {
			t.Fatal("the failed drain changed the queue or the appointment")
		}
		resp.down = false
		f.handOverQueued()
		if len(f.queued()) != 0 {
			t.Fatalf("gone=%v: hand-over still queued", gone)
		}
		if f.stored(id) != gone {
			t.Fatalf("gone=%v: appointment stored = %v", gone, f.stored(id))
		}
		if f.hasTracker(id) {
			t.Fatalf("gone=%v: tracker stored", gone)
		}
		if got := f.slots(u); got != testSlots-1 {
			t.Fatalf("gone=%v: slots = %d, want %d (neither kept nor deleted late appointments are refunded)", gone, got, testSlots-1)
		}
	}
}
