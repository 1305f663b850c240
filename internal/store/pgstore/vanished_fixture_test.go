package pgstore

import (
	"context"
	"net/url"
	"sync"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
)

// vanishedFixture is the set-up of the tests of an instance that vanishes (machine lost,
// network cut, process stopped) in the middle of a transaction: a leader and another instance
// on a new database, and the instance that vanishes, Gone, whose connections go through a
// proxy the test silences, cuts or stalls. A call of Gone that the test leaves blocked (on
// Release, in a policy) runs in Go; at cleanup, after the proxy's own cleanup has closed its
// connections, Release is closed, those calls are waited for and the stores closed.
type vanishedFixture struct {
	Direct              string // the database's URL, not through the proxy
	Leader, Other, Gone *Store
	Release             chan struct{}
	wg                  sync.WaitGroup
}

// newVanishedFixture opens the fixture's stores; behind starts the proxy (registering its
// cleanup) and returns the URL through it.
func newVanishedFixture(t *testing.T, behind func(t testing.TB, direct string) string) *vanishedFixture {
	t.Helper()
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	f := &vanishedFixture{Direct: srv.NewDatabase(t), Release: make(chan struct{})}
	f.Leader = openFixtureStore(t, f.Direct)
	t.Cleanup(func() { f.Leader.Close() })
	f.Other = openFixtureStore(t, f.Direct)
	t.Cleanup(func() { f.Other.Close() })
	t.Cleanup(func() { // runs after the proxy's, registered next
		close(f.Release)
		f.wg.Wait()
		if f.Gone != nil {
			f.Gone.Close()
		}
	})
	f.Gone = openFixtureStore(t, behind(t, f.Direct))
	return f
}

// Go runs fn, a call of Gone that may stay blocked until cleanup.
func (f *vanishedFixture) Go(fn func()) { f.wg.Go(fn) }

func openFixtureStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, &Options{Network: "regtest"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// behindCommitCutter puts a new commitCutter in front of the database at direct; it returns
// the URL through it and the proxy.
func behindCommitCutter(t testing.TB, direct string) (string, *commitCutter) {
	t.Helper()
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p := startCommitCutter(t, u.Host)
	u.Host = p.ln.Addr().String()
	return u.String(), p
}

// withCommitCutter is a newVanishedFixture behind that keeps the commitCutter in *p.
func withCommitCutter(p **commitCutter) func(testing.TB, string) string {
	return func(t testing.TB, direct string) string {
		u, c := behindCommitCutter(t, direct)
		*p = c
		return u
	}
}
