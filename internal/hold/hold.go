// Package hold decides whether the tower can serve a request now and, while a transient fault
// of its own stops it (bitcoind unreachable, the store refusing writes), holds the request
// until the fault clears, up to a bound. The CLN watchtower plugin files an appointment as
// invalid for good on most error answers, so a fault that will clear by itself is waited out
// rather than reported; only past the bound does the caller answer "unavailable".
//
// Each fault is a Condition, marked down and up by whoever observes it: the bitcoind
// reachability owner, and the outcomes of store writes. A condition that nobody else probes
// (store writes) lets one held request at a time retry, so the first write that succeeds
// releases every request held on it at once.
package hold

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable means the request was not served: a condition stayed down past the bound,
// or too many requests were already held. Nothing of the request was written.
var ErrUnavailable = errors.New("service currently unavailable")

// Outcomes of a held request, as reported to Config.OnRelease.
const (
	OutcomeServed  = "served"  // the condition cleared and the request ran
	OutcomeTimeout = "timeout" // the bound passed first
	OutcomeGone    = "gone"    // the client went away (context cancelled)
	OutcomeFull    = "full"    // refused at once: MaxHeld requests were already held
	OutcomeStopped = "stopped" // released unserved by Close: the tower is stopping
)

// Config bounds holding.
type Config struct {
	// Bound is the longest a request is held; zero answers ErrUnavailable at once, as
	// rust-teos does.
	Bound time.Duration
	// MaxHeld is how many requests may be held at once; past it new ones get ErrUnavailable
	// at once. Zero means 1024.
	MaxHeld int
	// OnRelease, if set, is called once per held request with the condition that held it
	// first, how long it waited and one of the Outcome constants.
	OnRelease func(condition string, waited time.Duration, outcome string)
}

// Gate holds requests while conditions are down. It is safe for concurrent use.
type Gate struct {
	cfg       Config
	slots     chan struct{}
	held      atomic.Int64
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns a gate; its conditions are added with Condition.
func New(cfg Config) *Gate {
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = 1024
	}
	if cfg.Bound < 0 {
		cfg.Bound = 0
	}
	return &Gate{cfg: cfg, slots: make(chan struct{}, cfg.MaxHeld), closing: make(chan struct{})}
}

// Close answers every held request, and every request that would wait from now on,
// ErrUnavailable at once: the tower is shutting down.
func (g *Gate) Close() { g.closeOnce.Do(func() { close(g.closing) }) }

// Closed reports whether Close was called: the tower is stopping.
func (g *Gate) Closed() bool {
	select {
	case <-g.closing:
		return true
	default:
		return false
	}
}

// Bound is the longest a request is held.
func (g *Gate) Bound() time.Duration { return g.cfg.Bound }

// Held is how many requests are held right now.
func (g *Gate) Held() int { return int(g.held.Load()) }

// Condition is one thing the tower needs to serve. It starts up.
type Condition struct {
	name  string
	retry time.Duration

	mu        sync.Mutex
	down      bool
	cause     error
	up        chan struct{} // closed while up; a fresh one while down
	trialing  bool          // a held request is retrying (retry > 0)
	nextTrial time.Time
	onChange  []func(up bool, cause error)
}

// OnChange adds a function called on every change of the condition, e.g. to log it once.
// It runs under the condition's lock: it must not call the condition.
func (c *Condition) OnChange(fn func(up bool, cause error)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onChange = append(c.onChange, fn)
}

// NewCondition returns a condition named name (used in metrics). With retry > 0, while it is
// down one held request at a time retries, every retry at most, and its success clears the
// condition: for a fault only a request's own success can show cleared. With retry == 0 the
// condition clears only through Up.
func NewCondition(name string, retry time.Duration) *Condition {
	up := make(chan struct{})
	close(up)
	return &Condition{name: name, retry: retry, up: up}
}

// Name is the condition's name.
func (c *Condition) Name() string { return c.name }

// Down marks the condition down with its cause. It reports whether it was up before.
func (c *Condition) Down(cause error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cause = cause
	c.trialing = false
	c.nextTrial = time.Now().Add(c.retry)
	if c.down {
		return false
	}
	c.down = true
	c.up = make(chan struct{})
	for _, fn := range c.onChange {
		fn(false, cause)
	}
	return true
}

// Up marks the condition up and releases every request held on it. It reports whether it
// was down before.
func (c *Condition) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trialing = false
	if !c.down {
		return false
	}
	c.down, c.cause = false, nil
	close(c.up)
	for _, fn := range c.onChange {
		fn(true, nil)
	}
	return true
}

// IsUp reports whether the condition is up.
func (c *Condition) IsUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down
}

// Cause is the error that last marked the condition down, nil while up.
func (c *Condition) Cause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// endTrial gives the trial back without a verdict (the request failed for its own reasons),
// so another held request may try at once.
func (c *Condition) endTrial() {
	c.mu.Lock()
	c.trialing = false
	c.mu.Unlock()
}

// state returns whether the caller may go on (up, or it got the trial) and otherwise what to
// wait on: the up channel and, for a retrying condition, when the next trial is due.
func (c *Condition) state() (ok, trial bool, up <-chan struct{}, due time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.down {
		return true, false, nil, 0
	}
	if c.retry > 0 {
		if c.trialing {
			// Look again later: the request trying now may leave without a verdict.
			return false, false, c.up, c.retry
		}
		if d := time.Until(c.nextTrial); d > 0 {
			return false, false, c.up, d
		}
		c.trialing = true
		return true, true, nil, 0
	}
	return false, false, c.up, -1
}

// Classifier says which condition an error of the request's own work means is down; nil for
// an error that is the request's answer.
type Classifier func(error) *Condition

// Do runs fn once every condition in needs is up. If fn fails with an error classify maps to
// a condition, that condition goes down and fn runs again once it is up: fn must leave
// nothing behind when it fails that way. A success clears every retrying condition in needs.
// The request is held at most the gate's bound from its first wait; past it, or if MaxHeld
// requests are held already, Do returns ErrUnavailable; if ctx ends first, ctx.Err().
func (g *Gate) Do(ctx context.Context, needs []*Condition, classify Classifier, fn func() error) error {
	var h *holding // nil until the request first has to wait
	defer func() { h.release(g) }()
	for {
		trial, err := g.await(ctx, needs, &h)
		if err != nil {
			return err
		}
		err = fn()
		var down *Condition
		if err != nil && classify != nil {
			down = classify(err)
		}
		if down == nil {
			if err == nil {
				for _, c := range needs {
					if c.retry > 0 {
						c.Up()
					}
				}
			} else if trial != nil {
				trial.endTrial()
			}
			if h != nil {
				h.outcome = OutcomeServed
			}
			return err
		}
		down.Down(err)
		if !slices.Contains(needs, down) {
			needs = append(needs[:len(needs):len(needs)], down) // wait for it too, or fn spins
		}
		if trial != nil && trial != down {
			trial.endTrial()
		}
		if h == nil {
			if h, err = g.hold(down); err != nil {
				return err
			}
		}
	}
}

// Try is Do for a request that must not be held: it runs fn at once if every condition in
// needs is up, and never waits. If one is down it returns ErrUnavailable without running fn;
// if fn fails with an error classify maps to a condition, that condition goes down (the
// requests after it wait on it) and Try returns ErrUnavailable wrapping the error. fn's
// other errors come back unchanged.
func (g *Gate) Try(needs []*Condition, classify Classifier, fn func() error) error {
	for _, c := range needs {
		if !c.IsUp() {
			return ErrUnavailable
		}
	}
	err := fn()
	if err != nil && classify != nil {
		if down := classify(err); down != nil {
			down.Down(err)
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return err
}

// holding is one held request.
type holding struct {
	condition string
	start     time.Time
	deadline  *time.Timer
	outcome   string
}

// hold takes a slot for a request that has to wait on c.
func (g *Gate) hold(c *Condition) (*holding, error) {
	if g.cfg.Bound <= 0 {
		return nil, ErrUnavailable
	}
	select {
	case g.slots <- struct{}{}:
	default:
		if g.cfg.OnRelease != nil {
			g.cfg.OnRelease(c.name, 0, OutcomeFull)
		}
		return nil, ErrUnavailable
	}
	g.held.Add(1)
	return &holding{condition: c.name, start: time.Now(), deadline: time.NewTimer(g.cfg.Bound), outcome: OutcomeTimeout}, nil
}

func (h *holding) release(g *Gate) {
	if h == nil {
		return
	}
	h.deadline.Stop()
	<-g.slots
	g.held.Add(-1)
	if g.cfg.OnRelease != nil {
		g.cfg.OnRelease(h.condition, time.Since(h.start), h.outcome)
	}
}

// await returns once every condition is up (or the caller got the trial of one, returned),
// holding the request in *h while it waits.
func (g *Gate) await(ctx context.Context, needs []*Condition, h **holding) (*Condition, error) {
	for {
		var (
			trial   *Condition
			blocked *Condition
			up      <-chan struct{}
			due     time.Duration
		)
		for _, c := range needs {
			ok, t, u, d := c.state()
			if t {
				if trial != nil {
					c.endTrial() // one trial per request is enough
					blocked, up, due = c, nil, c.retry
					break
				}
				trial = c
				continue
			}
			if !ok {
				blocked, up, due = c, u, d
				break
			}
		}
		if blocked == nil {
			return trial, nil
		}
		if trial != nil {
			trial.endTrial()
		}
		if *h == nil {
			var err error
			if *h, err = g.hold(blocked); err != nil {
				return nil, err
			}
		}
		if err := (*h).wait(ctx, g.closing, up, due); err != nil {
			return nil, err
		}
	}
}

// wait blocks until up is closed, due has passed (due < 0: never), the bound passes or ctx ends.
func (h *holding) wait(ctx context.Context, closing, up <-chan struct{}, due time.Duration) error {
	var retry <-chan time.Time
	if due >= 0 {
		t := time.NewTimer(due)
		defer t.Stop()
		retry = t.C
	}
	select {
	case <-up:
	case <-retry:
	case <-h.deadline.C:
		return ErrUnavailable
	case <-closing:
		h.outcome = OutcomeStopped
		return ErrUnavailable
	case <-ctx.Done():
		h.outcome = OutcomeGone
		return ctx.Err()
	}
	return nil
}
