package responder

import (
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// The tower skips blocks (--forceupdate on a pruned node) past the one holding a tracked
// penalty and resumes over 100 blocks above it, the last 100 indexed. The stale penalty's
// re-send gets -27 from btcd (its output is unspent); no block the tower will reach holds it,
// and it has over 100 confirmations: the tracker completes, refunding the slot, rather than
// being re-sent every 6 blocks until its user expires.
func TestSkippedPenaltyBlockCompletes(t *testing.T) {
	e := newBTCDEnv(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	start := e.tip(t)
	e.start(t, start)
	e.mine(t, b.Commitment)
	e.handle(t, id, b)
	e.wantTracker(t, id, start, false)
	p := e.mine(t) // the penalty, from the mempool, in a block the tower skips
	if !contains(e.blockAt(t, p), b.Penalty.TxHash()) {
		t.Fatal("penalty not mined")
	}
	e.node.Generate(t, teos.IrrevocablyResolved+10)
	resume := e.tip(t) - 1
	e.start(t, resume)
	before := e.slotsLeft(t)

	e.connect(t, resume+1)
	if _, err := e.store.Tracker(id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tracker: %v, want it completed", err)
	}
	if _, err := e.store.Appointment(id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("appointment: %v, want it deleted", err)
	}
	if got := e.slotsLeft(t); got != before+1 {
		t.Fatalf("slots %d, want %d (refunded)", got, before+1)
	}
}

func (e *btcdEnv) slotsLeft(t *testing.T) uint32 {
	t.Helper()
	u, ok, err := e.store.User(e.user)
	if err != nil || !ok {
		t.Fatalf("User: %v, %v", ok, err)
	}
	return u.AvailableSlots
}
