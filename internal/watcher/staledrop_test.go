package watcher

import (
	"bytes"
	"context"
	"testing"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// blockingResponder blocks HandleBreach for one UUID until released.
type blockingResponder struct {
	*fakeResponder
	hold    teos.UUID
	entered chan struct{}
	release chan struct{}
}

func (r *blockingResponder) HandleBreach(ctx context.Context, id teos.UUID, d, p *wire.MsgTx) (*store.Tracker, error) {
	if id == r.hold {
		close(r.entered)
		<-r.release
	}
	return r.fakeResponder.HandleBreach(ctx, id, d, p)
}

// An update acknowledged while the block that triggers the old version is being processed is
// deleted by the block's stale "Dropped" decision, with its queued hand-over.
func TestUpdateDuringBlockSurvivesStaleDrop(t *testing.T) {
	f := newFixture(t)
	u, v := f.newUser(), f.newUser()
	bu, bv := newBreach(1), newBreach(2)
	idU, idV := uuid(bu.loc, u), uuid(bv.loc, v)
	f.add(u, bu.loc, []byte("garbage, not decryptable")) // old version of U's appointment: invalid
	f.add(v, bv.loc, bv.blob)
	br := &blockingResponder{fakeResponder: f.resp, hold: idV, entered: make(chan struct{}), release: make(chan struct{})}
	f.w.responder = br
	blk := f.block(bu.dispute, bv.dispute) // U's dispute first: dropped, then V's breach blocks
	done := make(chan error, 1)
	go func() { done <- f.w.BlockConnected(t.Context(), blk, testHeight+f.nonce) }()
	<-br.entered
	acc := f.add(u, bu.loc, bu.blob) // U sends the valid penalty: receipt
	t.Logf("update acknowledged: start_block=%d", acc.StartBlock)
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.handOverQueued()
	if !f.stored(idU) || !f.hasTracker(idU) {
		t.Fatalf("acknowledged appointment lost: stored=%v tracker=%v queued=%v, HandleBreach calls for it=%d",
			f.stored(idU), f.hasTracker(idU), f.queued(), f.resp.callCount(idU))
	}
}

// The same through the hand-over queue: a queued late appointment is dropped (undecryptable)
// while the run is still going, the user re-sends a valid blob (receipt, hand-over queued
// again), and the run's commit deletes the new appointment and its queued hand-over.
func TestUpdateDuringHandOverRunSurvivesStaleDrop(t *testing.T) {
	f := newFixture(t)
	bu, bv := newBreach(11), newBreach(12)
	var u, v testUser
	for {
		u, v = f.newUser(), f.newUser()
		a, b := uuid(bu.loc, u), uuid(bv.loc, v)
		if bytes.Compare(a[:], b[:]) < 0 {
			break
		}
	}
	idU, idV := uuid(bu.loc, u), uuid(bv.loc, v)
	f.connect(bu.dispute, bv.dispute) // both disputes mined, nothing stored yet
	f.add(u, bu.loc, []byte("garbage, not decryptable"))
	f.add(v, bv.loc, bv.blob)
	if len(f.queued()) != 2 {
		t.Fatalf("queued %v", f.queued())
	}
	br := &blockingResponder{fakeResponder: f.resp, hold: idV, entered: make(chan struct{}), release: make(chan struct{})}
	f.w.responder = br
	done := make(chan error, 1)
	go func() { done <- f.w.HandOverQueued(t.Context()) }()
	<-br.entered
	f.add(u, bu.loc, bu.blob) // valid penalty now: receipt, hand-over queued again
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.handOverQueued()
	if !f.stored(idU) || !f.hasTracker(idU) {
		t.Fatalf("acknowledged appointment lost: stored=%v tracker=%v queued=%v", f.stored(idU), f.hasTracker(idU), f.queued())
	}
}

// When the old version was valid, the tracker built from its penalty must not be stored for
// the update acknowledged meanwhile: the update's own hand-over brings the new penalty.
func TestUpdateDuringBlockGetsItsOwnPenalty(t *testing.T) {
	f := newFixture(t)
	u, v := f.newUser(), f.newUser()
	bu, bv := newBreach(21), newBreach(22)
	idU, idV := uuid(bu.loc, u), uuid(bv.loc, v)
	f.add(u, bu.loc, bu.blob) // old version: valid, with bu.penalty
	f.add(v, bv.loc, bv.blob)
	br := &blockingResponder{fakeResponder: f.resp, hold: idV, entered: make(chan struct{}), release: make(chan struct{})}
	f.w.responder = br
	blk := f.block(bu.dispute, bv.dispute) // U's breach handed over first, then V's blocks
	done := make(chan error, 1)
	go func() { done <- f.w.BlockConnected(t.Context(), blk, testHeight+f.nonce) }()
	<-br.entered
	newPenalty := spend(bu.dispute, 777)
	f.add(u, bu.loc, wtcrypto.Encrypt(serialize(newPenalty), bu.dispute.TxHash()))
	close(br.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.hasTracker(idU) {
		t.Fatal("the old version's tracker was stored for the updated appointment")
	}
	f.handOverQueued()
	tr, err := f.store.Tracker(idU)
	if err != nil {
		t.Fatalf("updated appointment not handed over: %v (queued %v)", err, f.queued())
	}
	if tr.PenaltyTxID != newPenalty.TxHash() {
		t.Fatalf("tracker penalty %s, want the update's %s", tr.PenaltyTxID, newPenalty.TxHash())
	}
}
