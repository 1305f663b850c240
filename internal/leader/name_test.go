package leader

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// waitLeader waits until e names want as the leader.
func waitLeader(t *testing.T, e *Elector, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for e.Leader() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: leader %q, want %q", e.Name(), e.Leader(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every instance can tell which one leads, by the name the leader gave its connection; the
// name follows the leadership over a takeover, and a follower that cannot reach the database
// does not claim to know.
func TestLeaderName(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	other := srv.NewDatabase(t) // another tower on the same server: its own lock, its own leader
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(url, name string) (*Elector, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		e := New(Config{URL: url, Name: name, Every: 50 * time.Millisecond})
		wg.Go(func() { _ = e.Run(ctx) })
		return e, cancel
	}
	a, stopA := start(url, "host-a/127.0.0.1:9814")
	waitState(t, a, true)
	waitLeader(t, a, "host-a/127.0.0.1:9814")
	b, stopB := start(url, "host-b/127.0.0.1:9814")
	defer stopB()
	waitLeader(t, b, "host-a/127.0.0.1:9814")
	c, stopC := start(other, "host-c")
	defer stopC()
	waitState(t, c, true)
	waitLeader(t, c, "host-c")
	waitLeader(t, b, "host-a/127.0.0.1:9814") // still: c's lock is another database's

	stopA()
	waitState(t, b, true)
	waitLeader(t, b, "host-b/127.0.0.1:9814")

	// An unnamed leader (an older teosd) is shown as such, not as no leader.
	stopB()
	waitState(t, b, false)
	d, stopD := start(url, "")
	defer stopD()
	waitState(t, d, true)
	e, stopE := start(url, "host-e")
	defer stopE()
	waitLeader(t, e, unnamed)

	srv.Stop()
	waitLeader(t, e, "")
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"host/0.0.0.0:9814":     "host/0.0.0.0:9814",
		"tür\n":                 "t?r?", // sent as printable ASCII, which PostgreSQL keeps as is
		strings.Repeat("x", 70): strings.Repeat("x", 63),
	} {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// The idle timeout stays within what PostgreSQL accepts, whatever the polling period.
func TestIdleTimeoutRange(t *testing.T) {
	for _, every := range []time.Duration{time.Millisecond, time.Second, time.Minute, 30 * 24 * time.Hour, math.MaxInt64} {
		d := idleTimeout(every)
		if d <= 2*min(every, time.Hour) || d.Milliseconds() > math.MaxInt32 {
			t.Errorf("idleTimeout(%v) = %v", every, d)
		}
	}
}

// database_url may carry pgx's pool parameters, which the store's pool takes: the election's
// own connection must not send them to the server, which refuses a connection for them. It
// did, so no instance on such a URL ever led (no block processing) while the API served.
func TestElectionTakesTheStoresURL(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t) + "&pool_max_conns=4&pool_min_conns=1&pool_health_check_period=30s"
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Config{URL: url, Name: "host-a", Every: 50 * time.Millisecond})
	conn, err := a.connect(ctx)
	if err != nil {
		t.Fatalf("the election cannot connect with the store's URL: %v", err)
	}
	_ = conn.Close(ctx)
	wg.Go(func() { _ = a.Run(ctx) })
	waitState(t, a, true)
	b := New(Config{URL: url, Name: "host-b", Every: 50 * time.Millisecond})
	wg.Go(func() { _ = b.Run(ctx) })
	waitLeader(t, b, "host-a")
}
