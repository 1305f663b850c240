// Package limits bounds what one client can take from the public HTTP API: caps on open
// connections (for the whole server and per client address, with a short deadline for
// connections that send nothing; past its address's cap a connection waits parked, unread,
// for a place) and an optional per-client-address, per-endpoint request
// rate. rust-teos has neither, so both are opt-in extensions (teos.toml
// api_max_connections, api_max_connections_per_address, api_rate_limit, api_rate_burst);
// the body limits stay in httpapi, exactly as the protocol has them.
//
// The rate limit delays rather than refuses: the clients in the field drop an appointment
// for good on any error answer, but keep and retry it on a slow one. A request over the
// rate waits its turn in a FIFO queue and is refused (httpapi answers 503 / 32) only when
// its turn would come later than RateConfig.MaxDelay, or when too many requests already
// wait (docs/PROTOCOL.md §15.4).
package limits

import (
	"container/list"
	"context"
	"errors"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
)

// Defaults of the bounds on waiting requests. A waiting request costs its goroutine, its
// connection and its body (at most 2 KiB, 2.2 MB for a batch).
const (
	DefaultMaxDelay             = 45 * time.Second
	DefaultMaxWaitingPerAddress = 64
	DefaultMaxWaiting           = 4096
	DefaultMaxWaitingBytes      = 64 << 20
)

// sweepEvery is how often idle queues are dropped, so addresses seen once do not pile up.
const sweepEvery = time.Minute

var (
	// ErrDelayTooLong means the request's turn would come later than MaxDelay.
	ErrDelayTooLong = errors.New("rate limit: the wait would exceed the maximum delay")
	// ErrQueueFull means too many requests (of this address, or in all) already wait.
	ErrQueueFull = errors.New("rate limit: too many requests waiting")
)

// RateConfig sets the per-client-address (per /64 for IPv6), per-endpoint token bucket and
// its queue.
type RateConfig struct {
	// Rate is the sustained requests per second; 0 (or less) turns rate limiting off.
	Rate float64
	// Burst is how many requests may arrive at once; below 1 means max(1, ceil(Rate)).
	Burst int
	// MaxDelay is the longest a request may wait for its turn; <= 0 means DefaultMaxDelay.
	// It must stay below the HTTP server's write timeout, or a held request is cut off.
	MaxDelay time.Duration
	// MaxWaitingPerAddress, MaxWaiting and MaxWaitingBytes bound the requests waiting
	// from one address, in all, and their bodies' bytes in all; <= 0 means the default.
	MaxWaitingPerAddress int
	MaxWaiting           int
	MaxWaitingBytes      int64
}

// Rate is the rate limit, an httpapi.Gate.
type Rate struct {
	rate, burst float64
	maxDelay    time.Duration
	maxPerAddr  int
	maxWaiting  int
	maxBytes    int64

	mu           sync.Mutex
	queues       map[queueKey]*queue // guarded by mu
	perAddr      map[netip.Addr]int  // waiting requests per address; guarded by mu
	waiting      int                 // guarded by mu
	waitingBytes int64               // guarded by mu
	lastSweep    time.Time           // guarded by mu
}

type queueKey struct {
	addr     netip.Addr
	endpoint string
}

// queue is one token bucket and the requests waiting for its tokens, oldest first.
type queue struct {
	tokens  float64
	last    time.Time
	waiters list.List   // of *waiter
	timer   *time.Timer // pending dispatch, nil if none
}

type waiter struct {
	addr    netip.Addr
	size    int64
	ready   chan struct{} // closed when granted
	granted bool
}

// NewRate returns the rate limit for cfg, or nil when cfg.Rate turns it off (not a
// positive finite number).
func NewRate(cfg RateConfig) *Rate {
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		return nil
	}
	burst := float64(cfg.Burst)
	if cfg.Burst < 1 {
		burst = math.Max(1, math.Ceil(cfg.Rate))
	}
	l := &Rate{rate: cfg.Rate, burst: burst, maxDelay: cfg.MaxDelay, maxPerAddr: cfg.MaxWaitingPerAddress,
		maxWaiting: cfg.MaxWaiting, maxBytes: cfg.MaxWaitingBytes,
		queues: make(map[queueKey]*queue), perAddr: make(map[netip.Addr]int), lastSweep: time.Now()}
	if l.maxDelay <= 0 {
		l.maxDelay = DefaultMaxDelay
	}
	if l.maxPerAddr <= 0 {
		l.maxPerAddr = DefaultMaxWaitingPerAddress
	}
	if l.maxWaiting <= 0 {
		l.maxWaiting = DefaultMaxWaiting
	}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxWaitingBytes
	}
	return l
}

// Admit implements httpapi.Gate: it returns once a's client may be served on a's endpoint,
// in arrival order, or with ErrDelayTooLong or ErrQueueFull at once, or with ctx's error
// when the client goes away (its place is given up).
func (l *Rate) Admit(ctx context.Context, a httpapi.Admission) (time.Duration, error) {
	if a.Client.Onion {
		// Onion clients have no address to share a budget by: one key would let one of them
		// starve the rest. The onion listener's own connection cap bounds them together.
		return 0, nil
	}
	start := time.Now()
	key := queueKey{addr: clientaddr.Group(a.Client.Addr), endpoint: a.Endpoint}
	l.mu.Lock()
	if start.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(start)
	}
	q, ok := l.queues[key]
	if !ok {
		q = &queue{tokens: l.burst, last: start}
		l.queues[key] = q
	}
	l.refill(q, start)
	if q.waiters.Len() == 0 && q.tokens >= 1 {
		q.tokens--
		l.mu.Unlock()
		return 0, nil
	}
	// Everyone ahead takes a token first, so the wait is known now.
	need := float64(q.waiters.Len()) + 1 - q.tokens
	if time.Duration(need/l.rate*float64(time.Second)) > l.maxDelay {
		l.mu.Unlock()
		return 0, ErrDelayTooLong
	}
	size := int64(a.Size)
	if l.perAddr[key.addr] >= l.maxPerAddr || l.waiting >= l.maxWaiting || l.waitingBytes+size > l.maxBytes {
		l.mu.Unlock()
		return 0, ErrQueueFull
	}
	w := &waiter{addr: key.addr, size: size, ready: make(chan struct{})}
	elem := q.waiters.PushBack(w)
	l.perAddr[key.addr]++
	l.waiting++
	l.waitingBytes += size
	l.schedule(key, q, start)
	l.mu.Unlock()

	// The estimate above already bounds the wait; the timer only guards against surprises.
	guard := time.NewTimer(l.maxDelay + time.Second)
	defer guard.Stop()
	var err error
	select {
	case <-w.ready:
		return time.Since(start), nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-guard.C:
		err = ErrDelayTooLong
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted { // the turn came as the client left: the next in line gets the token
		q.tokens = math.Min(l.burst, q.tokens+1)
		l.dispatch(key, q, time.Now())
	} else {
		q.waiters.Remove(elem)
		l.forget(w)
	}
	return time.Since(start), err
}

// refill adds the tokens earned since q.last.
func (l *Rate) refill(q *queue, t time.Time) {
	if elapsed := t.Sub(q.last); elapsed > 0 {
		q.tokens = math.Min(l.burst, q.tokens+elapsed.Seconds()*l.rate)
	}
	q.last = t
}

// dispatch grants tokens to the waiters in order while there are tokens, then schedules
// itself for the next one. l.mu must be held.
func (l *Rate) dispatch(key queueKey, q *queue, t time.Time) {
	l.refill(q, t)
	for q.tokens >= 1 && q.waiters.Len() > 0 {
		w := q.waiters.Remove(q.waiters.Front()).(*waiter)
		q.tokens--
		w.granted = true
		close(w.ready)
		l.forget(w)
	}
	l.schedule(key, q, t)
}

// schedule arms q's timer for when its first waiter's token is earned. l.mu must be held.
func (l *Rate) schedule(key queueKey, q *queue, t time.Time) {
	if q.waiters.Len() == 0 || q.timer != nil {
		return
	}
	d := max(time.Duration((1-q.tokens)/l.rate*float64(time.Second)), time.Millisecond)
	q.timer = time.AfterFunc(d, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		q.timer = nil
		l.dispatch(key, q, time.Now())
	})
}

// forget drops w from the waiting counts. l.mu must be held.
func (l *Rate) forget(w *waiter) {
	l.waiting--
	l.waitingBytes -= w.size
	if l.perAddr[w.addr]--; l.perAddr[w.addr] <= 0 {
		delete(l.perAddr, w.addr)
	}
}

// sweep drops the queues that are idle and refilled: forgetting them changes nothing.
// l.mu must be held.
func (l *Rate) sweep(t time.Time) {
	for k, q := range l.queues {
		if q.waiters.Len() == 0 && q.timer == nil && q.tokens+t.Sub(q.last).Seconds()*l.rate >= l.burst {
			delete(l.queues, k)
		}
	}
	l.lastSweep = t
}

// Waiting is the number of requests waiting now, and how many of them are from addr (its
// /64 for IPv6).
func (l *Rate) Waiting(addr netip.Addr) (total, fromAddr int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting, l.perAddr[clientaddr.Group(addr)]
}

// size is the number of queues held, for tests.
func (l *Rate) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queues)
}
