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
	// waited counts requests that found the gate raised, and their total wait.
	waits  atomic.Int64
	waited atomic.Int64 // nanoseconds
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
func (g *Gate) Wait() {
	if g == nil {
		return
	}
	ch := g.busy.Load()
	if ch == nil || g.bound == 0 {
		return
	}
	start := time.Now()
	t := time.NewTimer(g.bound)
	select {
	case <-*ch:
	case <-t.C:
	}
	t.Stop()
	g.waits.Add(1)
	g.waited.Add(int64(time.Since(start)))
}

// Stats is how many requests waited at the gate so far and their total wait.
func (g *Gate) Stats() (waits int64, waited time.Duration) {
	if g == nil {
		return 0, 0
	}
	return g.waits.Load(), time.Duration(g.waited.Load())
}
