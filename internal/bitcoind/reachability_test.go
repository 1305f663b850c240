package bitcoind_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/bitcoind"
)

const bestHash = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"

// Callers classify by behaviour, without this package's types.
func TestErrorBehaviours(t *testing.T) {
	var rpc interface{ RPCCode() int }
	if err := error(&bitcoind.RPCError{Code: -26}); !errors.As(err, &rpc) || rpc.RPCCode() != -26 {
		t.Fatalf("RPCError has no RPCCode: %v", err)
	}
	var unreachable interface{ Unreachable() bool }
	var unauthorized interface{ Unauthorized() bool }
	wrapped := errors.Join(errors.New("x"), bitcoind.ErrUnreachable)
	if !errors.As(wrapped, &unreachable) || !unreachable.Unreachable() {
		t.Fatal("ErrUnreachable has no Unreachable")
	}
	if errors.As(wrapped, &unauthorized) && unauthorized.Unauthorized() {
		t.Fatal("a plain unreachable error claims to be a refusal")
	}
	if !errors.As(bitcoind.ErrUnauthorized, &unauthorized) || !unauthorized.Unauthorized() ||
		!errors.As(bitcoind.ErrUnauthorized, &unreachable) || !unreachable.Unreachable() {
		t.Fatal("ErrUnauthorized must be both unauthorized and unreachable")
	}
}

type changes struct {
	mu  sync.Mutex
	got []bool
}

func (c *changes) on(reachable bool, _ error) {
	c.mu.Lock()
	c.got = append(c.got, reachable)
	c.mu.Unlock()
}

func (c *changes) list() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bool(nil), c.got...)
}

// A 401 makes the client read the credentials again and retry once: a cookie rewritten by a
// bitcoind restart is followed without anyone noticing.
func TestCookieReReadOnRefusal(t *testing.T) {
	f := newFakeNode(t, reply{http.StatusUnauthorized, ""}, ok(quoted(bestHash)))
	reads := 0
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "old",
		Credentials: func() (string, string, error) { reads++; return "u", "new", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.BestBlockHash(t.Context()); err != nil {
		t.Fatal(err)
	}
	if reads != 1 || f.lastRequest(t).pass != "new" || c.AuthFailures() != 0 || !c.Reachable() {
		t.Fatalf("reads %d, last password %q, auth failures %d, reachable %v",
			reads, f.lastRequest(t).pass, c.AuthFailures(), c.Reachable())
	}
}

// Credentials that stay wrong are an authentication failure: counted, reported once as a
// change of reachability, and cleared by the next answer.
func TestRefusalTrackedAndCleared(t *testing.T) {
	f := newFakeNode(t,
		reply{http.StatusUnauthorized, ""}, reply{http.StatusUnauthorized, ""},
		reply{http.StatusUnauthorized, ""}, reply{http.StatusUnauthorized, ""},
		ok(quoted(bestHash)))
	var ch changes
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "p",
		Credentials: func() (string, string, error) { return "u", "p", nil }, OnReachability: ch.on})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 4 {
		if _, err := c.BestBlockHash(t.Context()); !bitcoind.IsUnauthorized(err) || !bitcoind.IsUnreachable(err) {
			t.Fatalf("err %v, want a refusal", err)
		}
	}
	if c.AuthFailures() != 4 || c.Reachable() {
		t.Fatalf("auth failures %d, reachable %v", c.AuthFailures(), c.Reachable())
	}
	if _, err := c.BestBlockHash(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := ch.list(); len(got) != 2 || got[0] || !got[1] || !c.Reachable() {
		t.Fatalf("changes %v, reachable %v", got, c.Reachable())
	}
}

// While bitcoind is unreachable the client probes it, so its return is seen without any
// other call.
func TestProbeSeesReturn(t *testing.T) {
	var (
		mu   sync.Mutex
		down = true
	)
	f := newFakeNode(t)
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusBadGateway) // no JSON-RPC body: unusable node
			return
		}
		_, _ = w.Write([]byte(`{"result":"` + bestHash + `","error":null,"id":1}`))
	})
	var ch changes
	up := make(chan struct{})
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "p",
		ProbeEvery: time.Millisecond, OnReachability: func(r bool, err error) {
			ch.on(r, err)
			if r {
				close(up)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.BestBlockHash(t.Context()); !bitcoind.IsUnreachable(err) {
		t.Fatalf("err %v", err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	<-up
	if got := ch.list(); len(got) != 2 || got[0] || !got[1] {
		t.Fatalf("changes %v", got)
	}
}

// A node that keeps refusing the credentials is probed less and less often: every refused
// call costs bitcoind a log line ("incorrect password attempt", which fail2ban rules match)
// and a 250 ms sleep in one of its RPC threads, and only an operator or a bitcoind restart
// (with a new cookie) ends a refusal. Each gap below is a lower bound, which a timer never
// undercuts however loaded the machine is.
func TestProbeBacksOffWhileRefused(t *testing.T) {
	const every = 10 * time.Millisecond
	var (
		mu    sync.Mutex
		times []time.Time
	)
	probed := make(chan struct{}, 16)
	f := newFakeNode(t)
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		select {
		case probed <- struct{}{}:
		default:
		}
	})
	c, err := bitcoind.New(bitcoind.Config{Host: strings.TrimPrefix(f.srv.URL, "http://"), User: "u", Pass: "p",
		ProbeEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.BestBlockHash(t.Context()); !bitcoind.IsUnauthorized(err) {
		t.Fatalf("err %v, want a refusal", err)
	}
	<-probed // the call's own request
	const probes = 6
	for range probes {
		<-probed
	}
	mu.Lock()
	got := append([]time.Time(nil), times...)
	mu.Unlock()
	wait := every
	for i := 1; i <= probes; i++ {
		if gap := got[i].Sub(got[i-1]); gap < wait {
			t.Fatalf("refused probe %d came %v after the last request, want at least %v (requests at %v)", i, gap, wait, got)
		}
		wait *= 2
	}
}
