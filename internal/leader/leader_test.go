package leader

import (
	"context"
	"sync"
	"testing"
	"time"

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
