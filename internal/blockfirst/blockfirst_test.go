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

// A released wait is counted, not as bounded; a wait cut at the bound is counted as both and
// lasted at least the bound.
func TestSnapshotCountsWaits(t *testing.T) {
	g := New(never)
	if s := g.Snapshot(); s != (WaitStats{}) {
		t.Fatalf("a new gate's snapshot %+v, want zero", s)
	}
	g.Begin()
	done := waitAsync(g)
	mustBlock(t, done, "while a block is in progress")
	g.End()
	mustReturn(t, done, "when the block was done")
	s := g.Snapshot()
	if s.Waits != 1 || s.Bounded != 0 || s.Waited <= 0 || s.Buckets[len(s.Buckets)-1] != 1 {
		t.Fatalf("after a released wait: %+v, want 1 wait, none bounded, a positive total", s)
	}

	const bound = 2 * time.Millisecond
	g = New(bound)
	g.Begin()
	defer g.End()
	mustReturn(t, waitAsync(g), "at the bound")
	mustReturn(t, waitAsync(g), "at the bound")
	s = g.Snapshot()
	if s.Waits != 2 || s.Bounded != 2 || s.Waited < 2*bound {
		t.Fatalf("after two bounded waits: %+v, want 2 waits, 2 bounded, at least %v in all", s, 2*bound)
	}
	if s.Buckets[0] != 0 { // 1 ms, under the bound
		t.Fatalf("buckets %v: a wait of at least %v counted under %v", s.Buckets, bound, WaitBuckets[0])
	}
	if n, d := g.Stats(); n != s.Waits || d != s.Waited {
		t.Fatalf("Stats() = %d, %v; Snapshot says %d, %v", n, d, s.Waits, s.Waited)
	}
}

// Each wait lands in the first bucket that holds it; the buckets are cumulative and past the
// last one a wait is counted in Waits only.
func TestSnapshotBuckets(t *testing.T) {
	g := New(never)
	for _, d := range []time.Duration{
		time.Millisecond,        // <= 1 ms
		1500 * time.Microsecond, // <= 2.5 ms
		time.Second,             // <= 1 s
		3 * time.Second,         // past them all
	} {
		g.observe(d, false)
	}
	g.observe(time.Second+time.Microsecond, true) // cut at a 1 s bound: <= 2.5 s
	s := g.Snapshot()
	want := [len(WaitBuckets)]int64{1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 4}
	if s.Buckets != want || s.Waits != 5 || s.Bounded != 1 {
		t.Fatalf("snapshot %+v, want buckets %v, 5 waits, 1 bounded", s, want)
	}
	if wantSum := 5*time.Second + 2500*time.Microsecond + time.Microsecond; s.Waited != wantSum {
		t.Fatalf("waited %v, want %v", s.Waited, wantSum)
	}
}

func TestNilGateSnapshot(t *testing.T) {
	var g *Gate
	if s := g.Snapshot(); s != (WaitStats{}) {
		t.Fatalf("nil gate snapshot %+v", s)
	}
}

// A caller's own deadline and stop cut a wait short of the bound; neither is counted as
// bounded, and only stop says so. Waiting counts the waits in progress.
func TestWaitUntilDeadlineAndStop(t *testing.T) {
	g := New(never)
	g.Begin()
	defer g.End()
	if !g.WaitUntil(time.Now().Add(2*time.Millisecond), nil) {
		t.Fatal("a wait ended by its deadline reported a stop")
	}
	if !g.WaitUntil(time.Now().Add(-time.Second), nil) {
		t.Fatal("a wait past its deadline reported a stop")
	}
	stop := make(chan struct{})
	stopped := make(chan bool, 1)
	go func() { stopped <- g.WaitUntil(time.Time{}, stop) }()
	for g.Snapshot().Waiting != 1 {
		select {
		case <-stopped:
			t.Fatal("the wait returned while the block was in progress")
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	select {
	case ok := <-stopped:
		if ok {
			t.Fatal("a wait ended by stop did not report it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitUntil did not return when stop was closed")
	}
	if s := g.Snapshot(); s.Waits != 3 || s.Bounded != 0 || s.Waiting != 0 {
		t.Fatalf("after three cut waits: %+v, want 3 waits, none bounded, none waiting", s)
	}
	var nilGate *Gate
	if !nilGate.WaitUntil(time.Time{}, stop) {
		t.Fatal("a nil gate reported a stop")
	}
}
