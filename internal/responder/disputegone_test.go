package responder

import (
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/pkg/teos"
)

var (
	missingInputs = carrier.Result{Status: carrier.StatusRejected, Code: carrier.CodeVerifyError}
	minFeeNotMet  = carrier.Result{Status: carrier.StatusRefusedForNow, Code: carrier.CodeVerifyRejected, Reason: "mempool min fee not met"}
)

// wantWatched checks that b lost its tracker but kept its appointment, and that the slots are
// those before.
func (e *env) wantWatched(t *testing.T, b breach, slots uint32) {
	t.Helper()
	if tr := e.tracker(t, b); tr != nil {
		t.Fatalf("tracker still stored: (height %d, confirmed %v)", tr.Height, tr.Confirmed)
	}
	if _, err := e.store.Appointment(b.id); err != nil {
		t.Fatalf("appointment gone (%v): a re-mined dispute would never trigger again", err)
	}
	if got := e.slots(t); got != slots {
		t.Fatalf("slots = %d, want %d (untracking neither charges nor refunds)", got, slots)
	}
}

// The reviewer's case: the dispute's block is reorganised out while the penalty waits
// unconfirmed, and bitcoind does not take the dispute back (its fee is below the mempool
// minimum). The stale re-send sends the dispute, then the penalty; the penalty's -25 with the
// dispute in no indexed block deletes only the tracker. When the cheater gets the dispute mined
// later, the appointment triggers again.
func TestStaleDisputeReorgedOutKeepsAppointment(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.handle(t, b) // the watcher at startHeight+1, whose block holds the dispute
	e.connect(t, startHeight+1, b.dispute)
	if err := e.r.BlockDisconnected(t.Context(), nil, startHeight+1); err != nil {
		t.Fatal(err)
	}
	e.carrier.takeSent()
	e.carrier.script(b.dispute, minFeeNotMet)
	e.carrier.script(b.penalty, missingInputs)
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry-1)
	e.wantSent(t)
	e.wantStatus(t, b, startHeight, false)
	e.connect(t, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantSent(t, b.dispute, b.penalty)
	e.wantWatched(t, b, slots)

	// Nothing more is sent for it, and the dispute mined later hands it over again.
	e.connectRange(t, startHeight+teos.ConfirmationsBeforeRetry+1, startHeight+20)
	e.wantSent(t)
	e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusInMempool})
	delete(e.carrier.mempool, b.penalty.TxHash()) // it left with the dispute
	if !e.handle(t, b) {                          // the watcher at startHeight+21
		t.Fatal("the re-mined dispute's penalty was rejected")
	}
	e.wantSent(t, b.penalty)
	e.wantStatus(t, b, startHeight+20, false)
	e.connect(t, startHeight+21, b.dispute)
	e.connect(t, startHeight+22, b.penalty)
	e.wantStatus(t, b, startHeight+22, true)
}

// The reviewer's throwaway test, as written: the dispute's re-send is answered as accepted by
// the fake, the penalty -25.
func TestRevDisputeReorgedOutWhileUnconfirmed(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.connect(t, startHeight+1, b.dispute)
	if err := e.r.BlockDisconnected(t.Context(), nil, startHeight+1); err != nil {
		t.Fatal(err)
	}
	e.carrier.takeSent()
	e.carrier.script(b.penalty, missingInputs)
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry)
	if _, err := e.store.Appointment(b.id); err != nil {
		t.Fatalf("appointment gone (%v): a re-mined dispute will never trigger again", err)
	}
}

// resendReorged, same rule: the penalty's block and the dispute's both leave the chain, the
// dispute is refused on re-send and the penalty gets -25: only the tracker goes.
func TestReorgDisputeGoneUntracks(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.handle(t, b)
	e.connect(t, startHeight+1, b.dispute)
	e.connect(t, startHeight+2, b.penalty)
	e.wantStatus(t, b, startHeight+2, true)
	for _, h := range []uint32{startHeight + 2, startHeight + 1} {
		if err := e.r.BlockDisconnected(t.Context(), nil, h); err != nil {
			t.Fatal(err)
		}
	}
	e.carrier.takeSent()
	e.carrier.script(b.dispute, minFeeNotMet)
	e.carrier.script(b.penalty, missingInputs)
	if err := e.r.BlockConnected(t.Context(), block(startHeight+1, 1), startHeight+1); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantWatched(t, b, slots)
}

// Only the penalty's block leaves; the dispute stays in an indexed block, so it is not re-sent,
// and the penalty's -25 means it is invalid: dropped as before.
func TestReorgDisputeIndexedPenaltyMissingInputsDrops(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.connect(t, startHeight+1, b.dispute)
	e.connect(t, startHeight+2, b.penalty)
	if err := e.r.BlockDisconnected(t.Context(), nil, startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.carrier.takeSent()
	e.carrier.script(b.penalty, missingInputs)
	if err := e.r.BlockConnected(t.Context(), block(startHeight+2, 1), startHeight+2); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.penalty)
	e.wantGone(t, b)
}

// A dispute bitcoind calls already in the chain (-27) is on the chain although the tower has
// not indexed it (bitcoind is ahead): the penalty's -25 is then a real rejection.
func TestStaleDisputeInChainPenaltyMissingInputsDrops(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.handle(t, b)
	e.carrier.takeSent()
	e.carrier.script(b.dispute, inChain)
	e.carrier.script(b.penalty, missingInputs)
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantSent(t, b.dispute, b.penalty)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded, as rust-teos v0.2 does)", got, slots+1)
	}
}

// Another rejection of the penalty (-26, not passing) drops it even with the dispute gone.
func TestStaleDisputeGonePenaltyRejectedDrops(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.carrier.script(b.dispute, minFeeNotMet)
	e.carrier.script(b.penalty, rejected)
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantGone(t, b)
}

// A transport error on the dispute decides nothing: the block is retried.
func TestStaleDisputeTransportErrorIsRetried(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry-1)
	e.carrier.takeSent()
	e.carrier.setDown(b.dispute, true)
	h := uint32(startHeight + teos.ConfirmationsBeforeRetry)
	if err := e.r.BlockConnected(t.Context(), block(h, 0), h); !errors.Is(err, errDown) {
		t.Fatalf("err = %v, want the carrier's error", err)
	}
	e.wantSent(t)
	e.wantStatus(t, b, startHeight, false)
	e.carrier.setDown(b.dispute, false)
	e.connect(t, h)
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, h, false)
}
