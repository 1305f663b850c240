package blockfirst

import (
	"testing"
	"time"
)

// never is far beyond any test: a wait that relies on the bound would hang the test.
const never = time.Hour

// waitAsync runs g.Wait on its own goroutine; the channel closes when it returns.
func waitAsync(g *Gate) <-chan struct{} {
	done := make(chan struct{})
	go func() { g.Wait(); close(done) }()
	return done
}

func mustReturn(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait did not return %s", what)
	}
}

func mustBlock(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("Wait returned %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestWaitPassesWhileNoBlock(t *testing.T) {
	g := New(never)
	mustReturn(t, waitAsync(g), "with no block in progress")
	g.Begin()
	g.End()
	mustReturn(t, waitAsync(g), "after the block")
	if n, _ := g.Stats(); n != 0 {
		t.Errorf("%d waits counted, want 0", n)
	}
}

func TestWaitHoldsUntilTheBlockIsDone(t *testing.T) {
	g := New(never)
	g.Begin()
	done := waitAsync(g)
	mustBlock(t, done, "while a block is in progress")
	g.End()
	mustReturn(t, done, "when the block was done")
	if n, _ := g.Stats(); n != 1 {
		t.Errorf("%d waits counted, want 1", n)
	}
}

func TestBeginNests(t *testing.T) {
	g := New(never)
	g.Begin()
	g.Begin()
	done := waitAsync(g)
	g.End()
	mustBlock(t, done, "before the outer End")
	g.End()
	mustReturn(t, done, "after the outer End")
	g.End() // an unmatched End is ignored
	mustReturn(t, waitAsync(g), "after an unmatched End")
}

// A request is delayed, never held for good: past the bound it goes ahead.
func TestWaitEndsAtTheBound(t *testing.T) {
	g := New(time.Millisecond)
	g.Begin()
	defer g.End()
	mustReturn(t, waitAsync(g), "at the bound")
	g0 := New(0)
	g0.Begin()
	mustReturn(t, waitAsync(g0), "with a zero bound")
}

func TestNilGateNeverWaits(t *testing.T) {
	var g *Gate
	g.Begin()
	mustReturn(t, waitAsync(g), "on a nil gate")
	g.End()
	if g.Bound() != 0 {
		t.Error("a nil gate has a bound")
	}
}
