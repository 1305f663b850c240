package leader

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestCutOffLeaderReleasesTheLock: the leader's machine is lost (or its process stopped): its
// session stays open on the server, silent. The leader steps down by itself, and the server must
// end the silent session so that another instance can lead, rather than when TCP keepalive
// gives up, hours later.
func TestCutOffLeaderReleasesTheLock(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	proxied, p := pgtest.BehindSilentProxy(t, direct)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Config{URL: proxied, Every: 50 * time.Millisecond})
	wg.Go(func() { _ = a.Run(ctx) })
	waitState(t, a, true)
	b := New(Config{URL: direct, Every: 50 * time.Millisecond})
	wg.Go(func() { _ = b.Run(ctx) })
	for range 5 { // b tries while a leads
		time.Sleep(60 * time.Millisecond)
		if l, _ := b.Leading(); l {
			t.Fatal("two leaders")
		}
	}
	p.Cut()
	waitState(t, a, false)
	waitState(t, b, true)
}
