package responder

import (
	"testing"
)

// A queued hand-over drained between blocks gets -25 for its penalty: its dispute is in no
// block and not in bitcoind's mempool (its block left the chain; the watcher then keeps the
// appointment, watched again). The cheater gets the dispute mined in the next block. Its
// hand-over must send the penalty again rather than take the carrier's -25 from before that
// block, which would delete the appointment and leave the breach unanswered.
func TestHandOverAfterRejectedDrainSendsAgain(t *testing.T) {
	e := newBTCDEnv(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	h := e.tip(t)
	e.start(t, h)

	// The drain at h.
	tr, err := e.r.HandleBreach(t.Context(), id, b.Commitment, b.Penalty)
	if err != nil {
		t.Fatal(err)
	}
	if tr != nil {
		t.Fatal("a penalty whose dispute is nowhere was not rejected")
	}

	// The next block holds the dispute; the watcher hands the breach over before the
	// responder sees that block.
	d := e.mine(t, b.Commitment)
	e.handle(t, id, b)
	e.wantTracker(t, id, h, false)
	e.connect(t, d)
	e.wantTracker(t, id, h, false)
	in, _, err := e.client.RawTransactionInfo(t.Context(), b.Penalty.TxHash())
	if err != nil || !in {
		t.Fatalf("penalty in the mempool = %v, %v; want true", in, err)
	}
}
