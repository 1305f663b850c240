package hold

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errDisk = errors.New("no space left on device")

type release struct {
	cond, outcome string
}

func newGate(bound time.Duration, maxHeld int) (*Gate, func() []release) {
	var (
		mu  sync.Mutex
		got []release
	)
	g := New(Config{Bound: bound, MaxHeld: maxHeld, OnRelease: func(c string, _ time.Duration, o string) {
		mu.Lock()
		got = append(got, release{c, o})
		mu.Unlock()
	}})
	return g, func() []release {
		mu.Lock()
		defer mu.Unlock()
		return append([]release(nil), got...)
	}
}

// waitHeld waits until n requests are held (no timing threshold: the test's deadline bounds it).
func waitHeld(t *testing.T, g *Gate, n int) {
	t.Helper()
	for g.Held() != n {
		time.Sleep(time.Millisecond)
	}
}

func TestUpRunsAtOnce(t *testing.T) {
	g, releases := newGate(time.Minute, 0)
	btc := NewCondition("bitcoind", 0)
	ran := 0
	if err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { ran++; return nil }); err != nil || ran != 1 {
		t.Fatalf("err %v, ran %d", err, ran)
	}
	if len(releases()) != 0 {
		t.Fatalf("a request that never waited was counted as held: %v", releases())
	}
}

func TestHeldUntilUp(t *testing.T) {
	g, releases := newGate(time.Hour, 0)
	btc := NewCondition("bitcoind", 0)
	btc.Down(errors.New("connection refused"))
	var ran atomic.Int32
	done := make(chan error)
	go func() {
		done <- g.Do(context.Background(), []*Condition{btc}, nil, func() error { ran.Add(1); return nil })
	}()
	waitHeld(t, g, 1)
	if ran.Load() != 0 {
		t.Fatal("ran while the condition was down")
	}
	btc.Up()
	if err := <-done; err != nil || ran.Load() != 1 {
		t.Fatalf("err %v, ran %d", err, ran.Load())
	}
	if r := releases(); len(r) != 1 || r[0] != (release{"bitcoind", OutcomeServed}) || g.Held() != 0 {
		t.Fatalf("releases %v, held %d", r, g.Held())
	}
}

func TestPastBoundUnavailable(t *testing.T) {
	g, releases := newGate(20*time.Millisecond, 0)
	btc := NewCondition("bitcoind", 0)
	btc.Down(errors.New("connection refused"))
	err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { t.Fatal("ran"); return nil })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if r := releases(); len(r) != 1 || r[0].outcome != OutcomeTimeout {
		t.Fatalf("releases %v", r)
	}
}

func TestZeroBoundAnswersAtOnce(t *testing.T) {
	g, _ := newGate(0, 0)
	btc := NewCondition("bitcoind", 0)
	btc.Down(errors.New("connection refused"))
	if err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
}

func TestMaxHeldRefusesAtOnceAndCancelFreesSlot(t *testing.T) {
	g, releases := newGate(time.Hour, 2)
	btc := NewCondition("bitcoind", 0)
	btc.Down(errors.New("connection refused"))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- g.Do(ctx, []*Condition{btc}, nil, func() error { return nil }) }()
	}
	waitHeld(t, g, 2)
	if err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("third request: %v, want ErrUnavailable at once", err)
	}
	cancel() // both clients go away
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled request: %v", err)
		}
	}
	if g.Held() != 0 {
		t.Fatalf("held %d after the clients left", g.Held())
	}
	counts := map[string]int{}
	for _, r := range releases() {
		counts[r.outcome]++
	}
	if counts[OutcomeFull] != 1 || counts[OutcomeGone] != 2 {
		t.Fatalf("releases %v", releases())
	}
	// The freed slots serve again.
	btc.Up()
	if err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// A store fault is seen by a request's own write; held requests retry one at a time, and the
// first success releases all of them.
func TestRetryingConditionClearedByATrial(t *testing.T) {
	g, releases := newGate(time.Hour, 0)
	store := NewCondition("store", time.Millisecond)
	classify := func(err error) *Condition {
		if errors.Is(err, errDisk) {
			return store
		}
		return nil
	}
	var full atomic.Bool
	full.Store(true)
	var written, trials atomic.Int32
	write := func() error {
		if full.Load() {
			if trials.Add(1) > 1 {
				defer trials.Add(-1)
				t.Error("two trials at once while the store is down")
				return errDisk
			}
			defer trials.Add(-1)
			return errDisk
		}
		written.Add(1)
		return nil
	}
	store.Down(errDisk) // as a first failed write would leave it
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() { errs <- g.Do(context.Background(), []*Condition{store}, classify, write) }()
	}
	waitHeld(t, g, n)
	if store.IsUp() || !errors.Is(store.Cause(), errDisk) {
		t.Fatalf("store condition up=%v cause %v", store.IsUp(), store.Cause())
	}
	full.Store(false)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if written.Load() != n || !store.IsUp() {
		t.Fatalf("written %d, store up %v", written.Load(), store.IsUp())
	}
	for _, r := range releases() {
		if r != (release{"store", OutcomeServed}) {
			t.Fatalf("release %v", r)
		}
	}
}

// An answer of the request's own (not a fault) is returned as is, even from a trial, and the
// condition stays down for the others.
func TestOwnErrorReturned(t *testing.T) {
	g, _ := newGate(time.Hour, 0)
	store := NewCondition("store", time.Millisecond)
	store.Down(errDisk)
	errAuth := errors.New("bad signature")
	err := g.Do(context.Background(), []*Condition{store}, func(error) *Condition { return nil }, func() error { return errAuth })
	if !errors.Is(err, errAuth) || store.IsUp() {
		t.Fatalf("err %v, store up %v", err, store.IsUp())
	}
}

func TestCloseReleasesHeld(t *testing.T) {
	g, releases := newGate(time.Hour, 0)
	btc := NewCondition("bitcoind", 0)
	btc.Down(errors.New("connection refused"))
	done := make(chan error)
	go func() { done <- g.Do(context.Background(), []*Condition{btc}, nil, func() error { return nil }) }()
	waitHeld(t, g, 1)
	g.Close()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	// Released by the shutdown, not by the bound: the metrics must not count a timeout.
	if got := releases(); len(got) != 1 || got[0] != (release{"bitcoind", OutcomeStopped}) {
		t.Fatalf("releases %v", got)
	}
	if err := g.Do(context.Background(), []*Condition{btc}, nil, func() error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
}

// The request whose retry failed leaves (its client went away): another held request takes
// over the retries, so the others are still released when the store clears.
func TestTrialsGoOnWhenTheTrialLeaves(t *testing.T) {
	g, _ := newGate(time.Hour, 0)
	store := NewCondition("store", time.Millisecond)
	classify := func(err error) *Condition {
		if errors.Is(err, errDisk) {
			return store
		}
		return nil
	}
	var full atomic.Bool
	full.Store(true)
	write := func() error {
		if full.Load() {
			return errDisk
		}
		return nil
	}
	store.Down(errDisk)
	ctx, leave := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- g.Do(ctx, []*Condition{store}, classify, write) }()
	waitHeld(t, g, 1)
	time.Sleep(5 * time.Millisecond) // a few failed trials
	second := make(chan error, 1)
	go func() { second <- g.Do(context.Background(), []*Condition{store}, classify, write) }()
	waitHeld(t, g, 2)
	leave()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	full.Store(false)
	if err := <-second; err != nil {
		t.Fatalf("second: %v", err)
	}
}

// Every function added with OnChange sees every change, once.
func TestOnChangeEveryObserver(t *testing.T) {
	c := NewCondition("store", 0)
	var a, b []bool
	c.OnChange(func(up bool, _ error) { a = append(a, up) })
	c.OnChange(func(up bool, _ error) { b = append(b, up) })
	c.Down(errDisk)
	c.Down(errDisk) // no change
	c.Up()
	if len(a) != 2 || a[0] || !a[1] || len(b) != 2 || b[0] || !b[1] {
		t.Errorf("observers saw %v and %v, want [false true] each", a, b)
	}
}

// Try never waits: a condition down is ErrUnavailable without running fn; a fault fn reports
// marks its condition down and is ErrUnavailable; fn's answers come back unchanged.
func TestTryNeverWaits(t *testing.T) {
	g := New(Config{Bound: time.Hour})
	store := NewCondition("store", time.Millisecond)
	fault, answer := errors.New("disk full"), errors.New("not enough slots")
	classify := func(err error) *Condition {
		if err == fault {
			return store
		}
		return nil
	}
	ran := 0
	if err := g.Try([]*Condition{store}, classify, func() error { ran++; return nil }); err != nil || ran != 1 {
		t.Fatalf("all up: %v, ran %d", err, ran)
	}
	if err := g.Try([]*Condition{store}, classify, func() error { return answer }); err != answer {
		t.Fatalf("an answer: %v, want it unchanged", err)
	}
	if err := g.Try([]*Condition{store}, classify, func() error { return fault }); !errors.Is(err, ErrUnavailable) || !errors.Is(err, fault) {
		t.Fatalf("a fault: %v, want ErrUnavailable wrapping it", err)
	}
	if store.IsUp() || store.Cause() != fault {
		t.Fatalf("after the fault the condition is up %v, cause %v", store.IsUp(), store.Cause())
	}
	if err := g.Try([]*Condition{store}, classify, func() error { ran++; return nil }); !errors.Is(err, ErrUnavailable) || ran != 1 {
		t.Fatalf("condition down: %v, ran %d more; want ErrUnavailable without running", err, ran-1)
	}
	if g.Held() != 0 {
		t.Errorf("%d held by Try", g.Held())
	}
}
