package leader

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
)

// An instance that cannot lead (Config.CanLead: its bitcoind does not answer) gives the lock
// up after unfitRounds periods, the other instance takes it, and while it still cannot lead it
// does not campaign, even with the lock free. Once it can, it leads again when the lock is free.
func TestLeaderThatCannotLeadStepsDown(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	var aCan, bCan atomic.Bool
	aCan.Store(true)
	start := func(can *atomic.Bool) (*Elector, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		e := New(Config{URL: url, Every: 50 * time.Millisecond, CanLead: func(context.Context) bool { return can.Load() }})
		wg.Go(func() { _ = e.Run(ctx) })
		return e, cancel
	}
	a, stopA := start(&aCan)
	defer stopA()
	waitState(t, a, true)
	b, stopB := start(&bCan) // b cannot lead yet: it must not take the lock when a lets it go
	defer stopB()

	aCan.Store(false)
	waitState(t, a, false)
	for range 5 { // the lock is free, and neither can lead
		time.Sleep(60 * time.Millisecond)
		if l, _ := b.Leading(); l {
			t.Fatal("b leads though it cannot")
		}
		if l, _ := a.Leading(); l {
			t.Fatal("a leads again though it cannot")
		}
	}
	bCan.Store(true)
	waitState(t, b, true)
	aCan.Store(true)
	for range 5 { // a can lead again, but b holds the lock
		time.Sleep(60 * time.Millisecond)
		if l, _ := a.Leading(); l {
			t.Fatal("two leaders")
		}
	}
	stopB()
	waitState(t, a, true)
}

// A leader whose CanLead fails for fewer than unfitRounds periods in a row keeps the lead.
func TestLeaderKeepsLeadThroughABriefFailure(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	// Every third answer is "cannot": never unfitRounds (3) in a row.
	a := New(Config{URL: url, Every: 20 * time.Millisecond, CanLead: func(context.Context) bool { return calls.Add(1)%3 != 0 }})
	wg.Go(func() { _ = a.Run(ctx) })
	waitState(t, a, true)
	_, changed := a.Leading()
	start := calls.Load()
	for calls.Load() < start+30 {
		select {
		case <-changed:
			t.Fatal("the leader stepped down after a failure shorter than unfitRounds periods")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A follower that cannot lead replaces a lost database session as any other instance does: it
// goes on telling which instance leads, and whether the database answers, instead of keeping a
// dead session (and an unknown leader) until it can lead again.
func TestBenchedFollowerReconnects(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Config{URL: url, Name: "host-a", Every: 50 * time.Millisecond})
	wg.Go(func() { _ = a.Run(ctx) })
	waitState(t, a, true)
	b := New(Config{URL: url, Name: "host-b", Every: 50 * time.Millisecond, CanLead: func(context.Context) bool { return false }})
	wg.Go(func() { _ = b.Run(ctx) })
	waitLeader(t, b, "host-a")

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// The server ends b's session (a restart, an administrator, a pooler).
	pid := onlySession(t, conn, "host-b")
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'host-b' AND pid <> $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never opened a new session (leader %q, database reachable %v)", b.Leader(), b.DatabaseReachable())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitLeader(t, b, "host-a")
	if !b.DatabaseReachable() {
		t.Fatal("b says the database does not answer")
	}
}

// onlySession waits until the instance named name has exactly one session on conn's database
// and returns its pid: an instance replaces a session it lost by itself only at its next
// period, and an ended session may still be listed for a moment.
func onlySession(t *testing.T, conn *pgx.Conn, name string) int32 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1`, name)
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d sessions, want 1", name, len(pids))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
