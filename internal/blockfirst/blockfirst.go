// Package blockfirst lets block processing go ahead of user requests: while the chain goroutine
// processes a block, requests wait at the gate before their CPU and store work, for at most a
// bound. Go has no goroutine priorities, so without it a block competes for the CPU with every
// request in flight and takes many times its idle time under load (docs/PERFORMANCE.md).
//
// A request is only ever delayed, never refused: past the bound it goes ahead anyway, so a long
// catch-up slows requests down rather than failing them.
package blockfirst

import (
	"sync"
	"sync/atomic"
	"time"
)

// Gate is raised by the chain goroutine around block processing and waited on by requests.
// The zero value is not usable; a nil *Gate never waits.
type Gate struct {
	bound time.Duration
	mu    sync.Mutex // serialises Begin and End
	depth int        // nested Begin calls
	busy  atomic.Pointer[chan struct{}]
	// The waits of requests that found the gate raised: per WaitBuckets bucket (the last
	// one past them all), their total, and those that reached the bound. Read by Snapshot
	// at scrape time, so a wait costs a few atomic adds and no callback.
	buckets [len(WaitBuckets) + 1]atomic.Int64
	waited  atomic.Int64 // nanoseconds
	bounded atomic.Int64
	waiting atomic.Int64 // waits in progress
}

// WaitBuckets are the upper bounds of Snapshot's wait-time buckets: a small block keeps
// requests a few milliseconds, a big one or a catch-up up to the bound (1 s in teosd), and a
// wait cut at the bound lasts a little past it.
var WaitBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// New returns a gate whose waits last at most bound.
func New(bound time.Duration) *Gate {
	return &Gate{bound: max(bound, 0)}
}

// Bound is the longest a request waits.
func (g *Gate) Bound() time.Duration {
	if g == nil {
		return 0
	}
	return g.bound
}

// Begin raises the gate: a block is being processed. Calls nest; the gate is lowered by the
// matching End.
func (g *Gate) Begin() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.depth++
	if g.depth == 1 {
		ch := make(chan struct{})
		g.busy.Store(&ch)
	}
}

// End lowers the gate raised by Begin and releases the waiting requests.
func (g *Gate) End() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.depth == 0 {
		return
	}
	g.depth--
	if g.depth == 0 {
		if ch := g.busy.Swap(nil); ch != nil {
			close(*ch)
		}
	}
}

// Wait returns at once unless a block is being processed; then it returns when the block is
// done or the bound has passed, whichever comes first.
func (g *Gate) Wait() { g.WaitUntil(time.Time{}, nil) }

// WaitUntil is Wait for a caller with limits of its own: it also returns at deadline (the
// zero time: none) and once stop is closed, so a connection's deadline or its server's
// shutdown is not stretched by the bound. It reports false if stop ended the wait.
func (g *Gate) WaitUntil(deadline time.Time, stop <-chan struct{}) bool {
	if g == nil {
		return true
	}
	ch := g.busy.Load()
	if ch == nil || g.bound == 0 {
		return true
	}
	start := time.Now()
	limit, bound := g.bound, true
	if !deadline.IsZero() && deadline.Sub(start) < limit {
		limit, bound = max(deadline.Sub(start), 0), false
	}
	g.waiting.Add(1)
	t := time.NewTimer(limit)
	bounded, stopped := false, false
	select {
	case <-*ch:
	case <-t.C:
		bounded = bound
	case <-stop:
		stopped = true
	}
	t.Stop()
	g.waiting.Add(-1)
	g.observe(time.Since(start), bounded)
	return !stopped
}

// observe counts one wait: its bucket first, then its time and whether it was bounded, which
// Snapshot reads in the opposite order.
func (g *Gate) observe(d time.Duration, bounded bool) {
	i := 0
	for i < len(WaitBuckets) && d > WaitBuckets[i] {
		i++
	}
	g.buckets[i].Add(1)
	g.waited.Add(int64(d))
	if bounded {
		g.bounded.Add(1)
	}
}

// Stats is how many requests waited at the gate so far and their total wait.
func (g *Gate) Stats() (waits int64, waited time.Duration) {
	s := g.Snapshot()
	return s.Waits, s.Waited
}

// WaitStats are the waits at a gate since it was made.
type WaitStats struct {
	// Waits is how many times a request found the gate raised and waited (one request may
	// wait at several steps); Bounded is how many of them reached the bound and went ahead
	// while the block was still being processed.
	Waits, Bounded int64
	// Waited is their total wait.
	Waited time.Duration
	// Buckets[i] is how many waits lasted at most WaitBuckets[i] (cumulative); Waits counts
	// them all.
	Buckets [len(WaitBuckets)]int64
	// Waiting is how many requests are waiting now (counted in Waits once they are done).
	Waiting int64
}

// Snapshot returns the waits so far. Waits and Buckets agree with each other, and Waited and
// Bounded include no wait that Waits does not count (they are read before the buckets).
func (g *Gate) Snapshot() WaitStats {
	var s WaitStats
	if g == nil {
		return s
	}
	s.Waiting = g.waiting.Load()
	s.Bounded = g.bounded.Load()
	s.Waited = time.Duration(g.waited.Load())
	for i := range g.buckets {
		s.Waits += g.buckets[i].Load()
		if i < len(s.Buckets) {
			s.Buckets[i] = s.Waits
		}
	}
	return s
}
