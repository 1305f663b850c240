package addbatch

import (
	"sync"
	"testing"
	"time"
)

// REVIEW: the hold's condition goes down between an add's Bypass check (false) and its
// enqueue: OnChange's Flush finds the queue empty, the add queues behind the call in flight,
// which the tower now holds up to its bound, and nothing flushes it again (the condition is
// already down; every later add bypasses). It waits there outside the hold (no bound of its
// own, not counted in Held / MaxHeld), then is sent and may be held a second full bound.
func TestAddQueuedAcrossTheDownIsFlushed(t *testing.T) {
	f := newFake(true) // every call waits on the gate: the call in flight is "held"
	var (
		mu    sync.Mutex
		down  bool
		racer bool // the next Bypass check races with the condition going down
		c     *Client
	)
	c = New(f, f, Config{MaxItems: 1000, InFlight: 1, Bypass: func() bool {
		mu.Lock()
		defer mu.Unlock()
		was := down
		if racer {
			racer = false
			down = true
			c.Flush() // OnChange: done before this add takes c.mu
		}
		return was
	}})
	out := make(chan outcome, 4)
	add(t.Context(), c, "ok in flight", out)
	<-f.calls
	mu.Lock()
	racer = true
	mu.Unlock()
	add(t.Context(), c, "ok racing", out)
	select {
	case got := <-f.calls:
		t.Logf("sent at once: %+v", got.sigs)
	case <-time.After(30 * time.Second): // never, while the bug is there
		t.Errorf("an add queued as the hold started still waits behind the held call (%d queued)", c.Queued())
	}
	close(f.gate)
	for range 2 {
		sameAnswer(t, <-out)
	}
}
