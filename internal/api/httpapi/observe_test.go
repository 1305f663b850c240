package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// gateRecorder admits (or refuses) and records who asked.
type gateRecorder struct {
	mu     sync.Mutex
	seen   []httpapi.Admission
	refuse bool
}

func (g *gateRecorder) Admit(_ context.Context, a httpapi.Admission) (time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, a)
	if g.refuse {
		return time.Millisecond, errors.New("over the bound")
	}
	return 0, nil
}

type exchanges struct {
	mu   sync.Mutex
	seen []httpapi.Exchange
}

func (e *exchanges) Observe(x httpapi.Exchange) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = append(e.seen, x)
}

func (e *exchanges) last(t *testing.T) httpapi.Exchange {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.seen) == 0 {
		t.Fatal("nothing observed")
	}
	return e.seen[len(e.seen)-1]
}

// TestEveryRouteIsObservedAndGated walks the route table itself, so a route added later is
// covered without touching this test: the observer sees each under its own name, and every
// route but /ping passes the gate, named the same way.
func TestEveryRouteIsObservedAndGated(t *testing.T) {
	gate, obs := &gateRecorder{}, &exchanges{}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: newFake(), Ext: newExtFake(), Gate: gate, Observer: obs}))
	defer srv.Close()
	for _, name := range httpapi.Endpoints() {
		if name == httpapi.EndpointOther {
			continue
		}
		r := post(t, srv, "/"+name, "{}")
		if r.status == http.StatusMethodNotAllowed {
			r = send(t, srv, http.MethodGet, "/"+name, "", "-")
		}
		if r.status == http.StatusMethodNotAllowed {
			t.Errorf("/%s: no method reaches it", name)
			continue
		}
		x := obs.last(t)
		if x.Endpoint != name || x.Status != r.status || x.Client.String() != "127.0.0.1" {
			t.Errorf("/%s: observed %+v, answered %d", name, x, r.status)
		}
		gate.mu.Lock()
		gated := len(gate.seen) > 0 && gate.seen[len(gate.seen)-1].Endpoint == name
		gate.seen = nil
		gate.mu.Unlock()
		if gated == (name == "ping") {
			t.Errorf("/%s: gated %v, want %v", name, gated, name != "ping")
		}
	}
	send(t, srv, http.MethodGet, "/wp-login.php", "", "-")
	if x := obs.last(t); x.Endpoint != httpapi.EndpointOther || x.Status != http.StatusMethodNotAllowed {
		t.Errorf("unknown path observed as %+v", x)
	}
	// The error writer tells the observer the code it sent.
	post(t, srv, "/register", "{}")
	if x := obs.last(t); x.Status != http.StatusBadRequest || x.ErrorCode != 1 {
		t.Errorf("missing user_id observed as %+v, want 400 / 1", x)
	}
}

func TestGateRefusalIsServiceUnavailable(t *testing.T) {
	fake := newFake()
	gate, obs := &gateRecorder{refuse: true}, &exchanges{}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: fake, Gate: gate, Observer: obs}))
	defer srv.Close()
	r := post(t, srv, "/register", `{"user_id":"`+validID+`"}`)
	if r.status != http.StatusServiceUnavailable || r.body != `{"error":"Service currently unavailable","error_code":32}` ||
		r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("refused request: %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
	assertNoCalls(t, fake)
	if x := obs.last(t); !x.Refused || x.ErrorCode != 32 || x.Held != time.Millisecond {
		t.Errorf("observed %+v", x)
	}
	// A body over the limit is refused before the gate is asked.
	gate.seen = nil
	if r := post(t, srv, "/register", string(make([]byte, 200))); r.status != http.StatusRequestEntityTooLarge || len(gate.seen) != 0 {
		t.Errorf("oversized body: %d, gate asked %d times", r.status, len(gate.seen))
	}
	if r := send(t, srv, http.MethodGet, "/ping", "", "-"); r.status != http.StatusOK {
		t.Errorf("/ping with a refusing gate: %d", r.status)
	}
}

// capOne lets one request in flight per client, and records releases.
type capOne struct {
	mu       sync.Mutex
	busy     bool
	released int
}

func (c *capOne) Acquire(clientaddr.Client) (func(), bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy {
		return nil, false
	}
	c.busy = true
	return func() { c.mu.Lock(); c.busy = false; c.released++; c.mu.Unlock() }, true
}

func TestInFlightCap(t *testing.T) {
	limiter := &capOne{}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: newFake(), InFlight: limiter}))
	defer srv.Close()
	if r := post(t, srv, "/register", "{}"); r.status != http.StatusBadRequest || limiter.released != 1 {
		t.Fatalf("a request within the cap: %d, released %d", r.status, limiter.released)
	}
	limiter.busy = true // as if another request were in flight
	if r := post(t, srv, "/register", "{}"); r.status != http.StatusServiceUnavailable || r.body != `{"error":"Service currently unavailable","error_code":32}` {
		t.Fatalf("over the cap: %d %s", r.status, r.body)
	}
	if r := send(t, srv, http.MethodGet, "/ping", "", "-"); r.status != http.StatusOK {
		t.Fatalf("/ping is not counted: %d", r.status)
	}
}

// heldRegister blocks Register until the caller goes away, then fails as grpc-go does for a
// cancelled call: a request held by the tower's hold gate whose client hangs up.
type heldRegister struct {
	teosv2.PublicTowerServicesClient
	entered chan struct{}
}

func (h heldRegister) Register(ctx context.Context, _ *commonv2.RegisterRequest, _ ...grpc.CallOption) (*commonv2.RegisterResponse, error) {
	close(h.entered)
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// TestClientGoneWhileHeldByTheCore: a client that hangs up while the core holds its request
// is observed as gone (499, no error code), as one that hangs up in the Gate is, and is
// sent nothing: not counted as an unexpected error (400 / 255).
func TestClientGoneWhileHeldByTheCore(t *testing.T) {
	obs := &exchanges{}
	core := heldRegister{entered: make(chan struct{})}
	h := httpapi.NewHandler(httpapi.Config{Client: core, Observer: obs})
	ctx, cancel := context.WithCancel(t.Context())
	body := `{"user_id":"02` + strings.Repeat("11", 32) + `"}`
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/register", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(w, r) }()
	<-core.entered
	cancel()
	<-done
	if x := obs.last(t); x.Status != httpapi.StatusClientClosedRequest || x.ErrorCode != 0 {
		t.Fatalf("observed status %d, error_code %d; want %d and none", x.Status, x.ErrorCode, httpapi.StatusClientClosedRequest)
	}
	if w.Body.Len() != 0 {
		t.Fatalf("answered a client that left: %q", w.Body.String())
	}
}
