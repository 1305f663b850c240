package responder

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/pkg/teos"
)

const minFeeReason = "mempool min fee not met, 1000 < 2250"

var (
	refusedForNow = carrier.Result{Status: carrier.StatusRefusedForNow, Code: -26, Reason: minFeeReason}
	accepted      = carrier.Result{Status: carrier.StatusInMempool}
)

// warnings counts WARN records that carry minFeeReason.
type warnings struct {
	mu sync.Mutex
	n  int
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" && a.Value.String() == minFeeReason {
			w.mu.Lock()
			w.n++
			w.mu.Unlock()
		}
		return true
	})
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) take() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n
	w.n = 0
	return n
}

func withWarnings(e *env) *warnings {
	w := &warnings{}
	e.r = New(Config{Store: e.store, Carrier: e.carrier, Logger: slog.New(w)}, startHeight)
	return w
}

// The fee spike: the first broadcast gets "mempool min fee not met". The appointment is kept
// with an unconfirmed tracker, the penalty is sent again every 6 blocks (still refused at the
// first retry, accepted at the second once the spike passed), and the block holding it
// confirms it.
func TestHandleBreachRefusedForNowKeepsTrackerAndResends(t *testing.T) {
	e := newEnv(t)
	w := withWarnings(e)
	b := e.newBreach(t, 1)
	slots := e.slots(t)
	e.carrier.script(b.penalty, refusedForNow)
	if !e.handle(t, b) {
		t.Fatal("a penalty refused for now got no tracker")
	}
	e.wantSent(t, b.penalty)
	e.wantStatus(t, b, startHeight, false)
	if n := w.take(); n != 1 {
		t.Fatalf("%d warnings with the reason for the first broadcast, want 1", n)
	}

	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry-1)
	e.wantSent(t)
	e.connect(t, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantSent(t, b.dispute, b.penalty) // the dispute is in no block here
	e.wantStatus(t, b, startHeight+teos.ConfirmationsBeforeRetry, false)
	if n := w.take(); n != 1 {
		t.Fatalf("%d warnings with the reason for the re-send, want 1", n)
	}

	e.carrier.script(b.penalty, accepted) // the spike passed
	e.connectRange(t, startHeight+7, startHeight+11)
	e.wantSent(t)
	e.connect(t, startHeight+12)
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, startHeight+12, false)
	if n := w.take(); n != 0 {
		t.Fatalf("%d warnings after the penalty was accepted", n)
	}

	e.connect(t, startHeight+13, b.penalty)
	e.wantStatus(t, b, startHeight+13, true)
	if got := e.slots(t); got != slots {
		t.Fatalf("slots = %d, want %d", got, slots)
	}
	e.connectRange(t, startHeight+14, startHeight+13+teos.IrrevocablyResolved)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d after completion, want %d (refund)", got, slots+1)
	}
}

// A penalty evicted from the mempool and refused for now when re-sent keeps its tracker.
func TestRebroadcastRefusedForNowKeepsTracker(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.carrier.takeSent()
	slots := e.slots(t)
	e.carrier.script(b.penalty, refusedForNow)
	for retry := uint32(1); retry <= 3; retry++ {
		e.connectRange(t, startHeight+(retry-1)*teos.ConfirmationsBeforeRetry+1, startHeight+retry*teos.ConfirmationsBeforeRetry)
		e.wantSent(t, b.dispute, b.penalty)
		e.wantStatus(t, b, startHeight+retry*teos.ConfirmationsBeforeRetry, false)
	}
	if _, err := e.store.Appointment(b.id); err != nil {
		t.Fatalf("appointment: %v", err)
	}
	if got := e.slots(t); got != slots {
		t.Fatalf("slots = %d, want %d", got, slots)
	}
}

// A final -26 (not a passing reason) still drops the tracker, refunding its slot.
func TestRebroadcastFinalPolicyRejectionDrops(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	slots := e.slots(t)
	e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusRejected, Code: -26, Reason: "min relay fee not met, 0 < 110"})
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded, as rust-teos v0.2 does)", got, slots+1)
	}
}

// After a reorg, a penalty refused for now keeps its tracker, re-dated to wait 6 blocks.
func TestReorgPenaltyRefusedForNowKeepsTracker(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	if err := e.r.BlockDisconnected(t.Context(), nil, mined); err != nil {
		t.Fatal(err)
	}
	e.carrier.takeSent()
	e.carrier.script(b.penalty, refusedForNow)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, mined, false)
}
