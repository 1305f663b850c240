package limits

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

var (
	alice = netip.MustParseAddr("10.0.0.1")
	bob   = netip.MustParseAddr("10.0.0.2")
)

func admission(addr netip.Addr, endpoint string) httpapi.Admission {
	return httpapi.Admission{Client: clientaddr.Client{Addr: addr}, Endpoint: endpoint, Size: 100}
}

// waitWaiting polls until n requests wait in total.
func waitWaiting(t *testing.T, l *Rate, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if total, _ := l.Waiting(alice); total == n {
			return
		}
		if time.Now().After(deadline) {
			total, _ := l.Waiting(alice)
			t.Fatalf("%d requests waiting, want %d", total, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRateOffReturnsNil(t *testing.T) {
	if NewRate(RateConfig{Rate: 0}) != nil || NewRate(RateConfig{Rate: -1}) != nil {
		t.Fatal("a rate <= 0 must turn the limit off")
	}
}

func TestRateDelaysInArrivalOrder(t *testing.T) {
	l := NewRate(RateConfig{Rate: 20, Burst: 1})
	ctx := t.Context()
	if d, err := l.Admit(ctx, admission(alice, "add_appointment")); err != nil || d != 0 {
		t.Fatalf("within the burst: waited %v, %v", d, err)
	}
	const n = 10
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Admit(ctx, admission(alice, "add_appointment")); err != nil {
				t.Errorf("request %d refused: %v", i, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		// Queued (or served) before the next one arrives.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			total, _ := l.Waiting(alice)
			if total+len(snapshot(&mu, &order)) == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("request %d never queued", i)
			}
		}
	}
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("served in order %v, want arrival order", order)
		}
	}
}

func snapshot(mu *sync.Mutex, s *[]int) []int {
	mu.Lock()
	defer mu.Unlock()
	return append([]int(nil), *s...)
}

func TestRateRefusesPastMaxDelay(t *testing.T) {
	// One token per 10 s: the third request's turn is ~20 s away, past the 15 s bound as
	// long as less than 5 s pass between the first and the third (a loaded machine).
	l := NewRate(RateConfig{Rate: 0.1, Burst: 1, MaxDelay: 15 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if _, err := l.Admit(ctx, admission(alice, "register")); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = l.Admit(ctx, admission(alice, "register")) }() // its turn is in ~10 s
	waitWaiting(t, l, 1)
	start := time.Now()
	if _, err := l.Admit(ctx, admission(alice, "register")); !errors.Is(err, ErrDelayTooLong) {
		t.Fatalf("a turn ~20 s away with a 15 s bound: %v, want ErrDelayTooLong", err)
	}
	if time.Since(start) > 5*time.Second { // held, it would wait for the guard (16 s)
		t.Error("a request that cannot be served in time should be refused at once, not held")
	}
	// Other endpoints and addresses have their own bucket.
	if d, err := l.Admit(ctx, admission(alice, "get_appointment")); err != nil || d != 0 {
		t.Errorf("another endpoint: waited %v, %v", d, err)
	}
	if d, err := l.Admit(ctx, admission(bob, "register")); err != nil || d != 0 {
		t.Errorf("another address: waited %v, %v", d, err)
	}
}

func TestRateWaitingBounds(t *testing.T) {
	// One token per 100 s: everything past the burst waits until cancelled.
	l := NewRate(RateConfig{Rate: 0.01, Burst: 1, MaxDelay: time.Hour, MaxWaitingPerAddress: 2, MaxWaiting: 3, MaxWaitingBytes: 1 << 20})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	hold := func(a httpapi.Admission) {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = l.Admit(ctx, a) }()
	}
	for _, ep := range []string{"register", "get_appointment"} {
		if _, err := l.Admit(ctx, admission(alice, ep)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Admit(ctx, admission(bob, "register")); err != nil {
		t.Fatal(err)
	}
	hold(admission(alice, "register"))
	waitWaiting(t, l, 1)
	hold(admission(alice, "get_appointment")) // the per-address bound spans endpoints
	waitWaiting(t, l, 2)
	if _, err := l.Admit(ctx, admission(alice, "register")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiting request from one address: %v, want ErrQueueFull", err)
	}
	hold(admission(bob, "register"))
	waitWaiting(t, l, 3)
	if _, err := l.Admit(ctx, httpapi.Admission{Client: clientaddr.Client{Addr: netip.MustParseAddr("10.0.0.3")}, Endpoint: "register"}); err != nil {
		t.Fatalf("a fresh address within its burst is not held: %v", err)
	}
	if _, err := l.Admit(ctx, admission(netip.MustParseAddr("10.0.0.3"), "register")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("past the global bound: %v, want ErrQueueFull", err)
	}
	// Bodies held while waiting are bounded too.
	small := NewRate(RateConfig{Rate: 0.01, Burst: 1, MaxDelay: time.Hour, MaxWaitingBytes: 150})
	for _, a := range []netip.Addr{alice, bob} {
		if _, err := small.Admit(ctx, admission(a, "register")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = small.Admit(ctx, admission(alice, "register")) }()
	waitWaiting(t, small, 1)
	if _, err := small.Admit(ctx, admission(bob, "register")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("200 bytes waiting with a 150-byte bound: %v, want ErrQueueFull", err)
	}
}

func TestRateClientGoneFreesItsPlace(t *testing.T) {
	l := NewRate(RateConfig{Rate: 0.01, Burst: 1, MaxDelay: time.Hour, MaxWaitingPerAddress: 1})
	if _, err := l.Admit(t.Context(), admission(alice, "register")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := l.Admit(ctx, admission(alice, "register")); errc <- err }()
	waitWaiting(t, l, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if total, mine := l.Waiting(alice); total != 0 || mine != 0 {
		t.Fatalf("after the client left: %d waiting (%d from it), want 0", total, mine)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go func() { _, _ = l.Admit(ctx2, admission(alice, "register")) }()
	waitWaiting(t, l, 1) // the place was free again
}

func TestRateSweepsIdleQueues(t *testing.T) {
	l := NewRate(RateConfig{Rate: 1000, Burst: 1})
	for i := range 50 {
		a := netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})
		if _, err := l.Admit(t.Context(), admission(a, "register")); err != nil {
			t.Fatal(err)
		}
	}
	if l.size() != 50 {
		t.Fatalf("%d queues, want 50", l.size())
	}
	l.mu.Lock()
	l.lastSweep = time.Now().Add(-2 * sweepEvery) // the next request sweeps
	l.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // 1000/s: every bucket refilled
	if _, err := l.Admit(t.Context(), admission(alice, "register")); err != nil {
		t.Fatal(err)
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d queues after the sweep, want 1 (the one just used)", n)
	}
}

// registerOnly answers Register; the other methods are never called here.
type registerOnly struct {
	teosv2.PublicTowerServicesClient
}

func (registerOnly) Register(context.Context, *commonv2.RegisterRequest, ...grpc.CallOption) (*commonv2.RegisterResponse, error) {
	return &commonv2.RegisterResponse{UserId: make([]byte, 33)}, nil
}

// TestRateOverHTTP puts the gate behind httpapi on a real server: past the burst a
// request is delayed and then served; /ping never waits; a request that cannot be served
// in time gets 503 / 32 in rust-teos's words; a client that hangs up frees its place.
func TestRateOverHTTP(t *testing.T) {
	// One token per 2 s: the queued request below stays queued while the next one arrives,
	// even on a loaded machine.
	l := NewRate(RateConfig{Rate: 0.5, Burst: 1, MaxDelay: 5 * time.Second, MaxWaitingPerAddress: 1})
	var mu sync.Mutex
	var seen []httpapi.Exchange
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: registerOnly{}, Gate: l,
		Observer: httpapi.ObserverFunc(func(e httpapi.Exchange) { mu.Lock(); seen = append(seen, e); mu.Unlock() })}))
	defer srv.Close()
	register := func(ctx context.Context) (int, string, error) {
		body := `{"user_id":"02` + strings.Repeat("11", 32) + `"}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := register(t.Context()); err != nil || code != http.StatusOK {
		t.Fatalf("first register: %d %s %v", code, body, err)
	}
	// The second waits ~2 s for its token, then is served.
	if code, body, err := register(t.Context()); err != nil || code != http.StatusOK {
		t.Fatalf("second register, delayed: %d %s %v", code, body, err)
	}
	// The bucket is empty: queue one (~2 s), then one more is past the address's one
	// waiting place.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = register(ctx) }()
	waitWaiting(t, l, 1)
	code, body, err := register(t.Context())
	if err != nil || code != http.StatusServiceUnavailable || body != `{"error":"Service currently unavailable","error_code":32}` {
		t.Fatalf("past the bound: %d %s %v", code, body, err)
	}
	for range 20 {
		resp, err := srv.Client().Get(srv.URL + "/ping")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("ping under the rate limit: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	cancel() // the waiting client hangs up
	<-done
	waitWaiting(t, l, 0)

	// The server notices the hang-up on its own goroutine: the client's call and the gate's
	// count can both be over before the handler reports the exchange.
	count := func() (refused, held, gone int) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range seen {
			if e.Status == httpapi.StatusClientClosedRequest && !e.Refused {
				gone++
			}
			if e.Refused && e.Status == http.StatusServiceUnavailable && e.ErrorCode == 32 && e.Endpoint == "register" {
				refused++
			}
			if e.Held > 0 && e.Status == http.StatusOK {
				held++
			}
		}
		return refused, held, gone
	}
	refused, held, gone := count()
	for deadline := time.Now().Add(10 * time.Second); gone == 0 && time.Now().Before(deadline); refused, held, gone = count() {
		time.Sleep(time.Millisecond)
	}
	if refused != 1 || held != 1 || gone != 1 {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("observer saw %d refused (want 1), %d held then served (want 1), %d gone (want 1): %+v", refused, held, gone, seen)
	}
}

func TestRequestsCapsForwardedClientsOnly(t *testing.T) {
	r := NewRequests(2)
	carol := clientaddr.Client{Addr: alice, Forwarded: true}
	rel1, ok1 := r.Acquire(carol)
	rel2, ok2 := r.Acquire(carol)
	if !ok1 || !ok2 {
		t.Fatal("within the cap refused")
	}
	if _, ok := r.Acquire(carol); ok {
		t.Fatal("a third request in flight from one forwarded client accepted")
	}
	if _, ok := r.Acquire(clientaddr.Client{Addr: bob, Forwarded: true}); !ok {
		t.Fatal("another forwarded client refused")
	}
	for range 5 { // direct clients are the Listener's business
		if _, ok := r.Acquire(clientaddr.Client{Addr: alice}); !ok {
			t.Fatal("a direct client counted")
		}
	}
	rel1()
	rel1() // twice is once
	if r.InFlight(alice) != 1 {
		t.Fatalf("%d in flight after one release, want 1", r.InFlight(alice))
	}
	if _, ok := r.Acquire(carol); !ok {
		t.Fatal("a freed place was not reused")
	}
	rel2()
	if NewRequests(0) != nil {
		t.Fatal("max 0 must mean no cap")
	}
	if rel, ok := (*Requests)(nil).Acquire(carol); !ok || rel == nil {
		t.Fatal("a nil cap must admit")
	}
}
