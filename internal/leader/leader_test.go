package leader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
)

// waitState waits for e to reach want; the elector is driven by a real database, so the
// wait is bounded only by the test's own deadline.
func waitState(t *testing.T, e *Elector, want bool) {
	t.Helper()
	for {
		got, changed := e.Leading()
		if got == want {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Minute):
			t.Fatalf("leading = %v, want %v", got, want)
		}
	}
}

func TestOneLeaderAndTakeover(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func() (*Elector, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		e := New(Config{URL: url, Every: 50 * time.Millisecond})
		wg.Go(func() { _ = e.Run(ctx) })
		return e, cancel
	}
	a, stopA := start()
	waitState(t, a, true)
	b, stopB := start()
	defer stopB()
	// b tries many times while a leads, and must never win.
	for range 5 {
		time.Sleep(60 * time.Millisecond)
		if l, _ := b.Leading(); l {
			t.Fatal("two leaders")
		}
	}
	stopA()
	waitState(t, a, false)
	waitState(t, b, true)

	// The database going away demotes the leader; its return lets it lead again.
	srv.Stop()
	waitState(t, b, false)
	srv.Restart()
	waitState(t, b, true)
}

// A leadership starts a term (Config.NewTerm) before it counts: an instance that cannot start
// one lets the lock go and never leads, and the other takes it. StepDown of a past term is
// ignored; of the current one, it makes the leader let go, and the next leadership has a new term.
func TestTermsAndStepDown(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	aLed := false
	a := New(Config{URL: url, Every: 10 * time.Millisecond,
		NewTerm: func(context.Context, *pgx.Conn) (int64, error) { return 0, errors.New("no term") },
		OnChange: func(leading bool) {
			mu.Lock()
			aLed = aLed || leading
			mu.Unlock()
		}})
	wg.Go(func() { _ = a.Run(ctx) })
	var terms atomic.Int64
	b := New(Config{URL: url, Every: 10 * time.Millisecond,
		NewTerm: func(context.Context, *pgx.Conn) (int64, error) { return terms.Add(1), nil }})
	wg.Go(func() { _ = b.Run(ctx) })
	waitState(t, b, true)
	first := b.Term()
	if first == 0 {
		t.Fatal("leading without a term")
	}
	b.StepDown(first - 1)
	b.StepDown(first)
	for b.Term() == first {
		_, changed := b.Leading()
		select {
		case <-changed:
		case <-time.After(time.Minute):
			t.Fatal("StepDown of the current term was ignored")
		}
	}
	waitState(t, b, true)
	if got := b.Term(); got != first+1 {
		t.Errorf("term after stepping down once = %d, want %d", got, first+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if aLed {
		t.Error("an instance that could not start a term led")
	}
}
