package limits

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimited(t *testing.T, rate float64, burst int) (http.Handler, *fakeClock, *atomic.Int32) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var served atomic.Int32
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	return RateLimit(next, RateConfig{Rate: rate, Burst: burst, Endpoints: PublicEndpoints, Now: clock.now}), clock, &served
}

func do(h http.Handler, remote, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("{}"))
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestTooManyRequestsBody(t *testing.T) {
	h, _, served := newLimited(t, 1, 1)
	if rec := do(h, "10.0.0.1:1000", "/register"); rec.Code != http.StatusOK {
		t.Fatalf("first request: %d", rec.Code)
	}
	rec := do(h, "10.0.0.1:1000", "/register")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("second request: %d, want 429", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	want := `{"error":"Too many requests","error_code":8}`
	if rec.Body.String() != want {
		t.Errorf("body %s, want %s", rec.Body, want)
	}
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"error_code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != teos.ErrCodeTooManyRequests {
		t.Errorf("body %s: %+v %v", rec.Body, e, err)
	}
	if served.Load() != 1 {
		t.Errorf("next served %d requests, want 1", served.Load())
	}
}

func TestBurstAndRefill(t *testing.T) {
	h, clock, _ := newLimited(t, 2, 3)
	for i := range 3 {
		if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, rec.Code)
		}
	}
	if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("past the burst: %d", rec.Code)
	}
	clock.advance(499 * time.Millisecond) // 0.998 tokens: not yet
	if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("before a token refilled: %d", rec.Code)
	}
	clock.advance(2 * time.Millisecond)
	if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusOK {
		t.Fatalf("after a token refilled: %d", rec.Code)
	}
	clock.advance(time.Hour) // refills to the burst, not beyond
	for i := range 3 {
		if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusOK {
			t.Fatalf("request %d after an hour: %d", i, rec.Code)
		}
	}
	if rec := do(h, "10.0.0.1:1", "/add_appointment"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("bucket grew past its burst: %d", rec.Code)
	}
}

func TestPerAddressAndEndpoint(t *testing.T) {
	h, _, _ := newLimited(t, 1, 1)
	for _, tc := range []struct {
		remote, path string
		want         int
	}{
		{"10.0.0.1:1", "/register", 200},
		{"10.0.0.1:2", "/register", 429}, // another port, same address
		{"10.0.0.2:1", "/register", 200}, // another address
		{"[2001:db8::1]:1", "/register", 200},
		{"[2001:db8::1]:9", "/register", 429},
		{"10.0.0.1:1", "/add_appointment", 200}, // another endpoint
		{"10.0.0.1:1", "/get_appointment", 200},
		{"10.0.0.1:1", "/get_subscription_info", 200},
		{"10.0.0.1:1", "/register/extra", 429}, // routed by first segment, like httpapi
		{"10.0.0.1:1", "/made_up", 200},        // unknown paths share one bucket
		{"10.0.0.1:1", "/another_made_up", 429},
	} {
		if rec := do(h, tc.remote, tc.path); rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.remote, tc.path, rec.Code, tc.want)
		}
	}
}

func TestOffByDefault(t *testing.T) {
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, rate := range []float64{0, -1} {
		if _, ok := RateLimit(next, RateConfig{Rate: rate, Burst: 5}).(*limiter); ok {
			t.Errorf("rate %v: limiter installed", rate)
		}
	}
	h, _, served := newLimited(t, 0, 0)
	for range 100 {
		if rec := do(h, "10.0.0.1:1", "/register"); rec.Code != http.StatusOK {
			t.Fatalf("rate 0: %d", rec.Code)
		}
	}
	if served.Load() != 100 {
		t.Fatalf("served %d", served.Load())
	}
}

func TestDefaultBurst(t *testing.T) {
	h, _, _ := newLimited(t, 2.5, 0) // burst ceil(2.5) = 3
	codes := make([]int, 4)
	for i := range codes {
		codes[i] = do(h, "10.0.0.1:1", "/ping").Code
	}
	if codes[2] != 200 || codes[3] != 429 {
		t.Fatalf("codes %v, want three 200 then 429", codes)
	}
}

func TestSweepForgetsIdleClients(t *testing.T) {
	h, clock, _ := newLimited(t, 1, 2)
	for i := range 50 {
		do(h, net.JoinHostPort("10.1.0."+itoa3(i), "1"), "/register")
	}
	l := h.(*limiter)
	if l.size() != 50 {
		t.Fatalf("%d buckets, want 50", l.size())
	}
	clock.advance(sweepEvery)
	do(h, "10.2.0.1:1", "/register")
	if l.size() != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", l.size())
	}
}

func itoa3(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestListenerBound holds connections open and checks the next one is not served until one
// of them closes.
func TestListenerBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(Listener(ln, 2)) }()
	t.Cleanup(func() { _ = srv.Close() })

	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	get := func(c net.Conn, wait time.Duration) (string, error) {
		if _, err := io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	held := []net.Conn{dial(), dial()}
	for i, c := range held {
		if got, err := get(c, 5*time.Second); err != nil || !strings.Contains(got, "200 OK") {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
	third := dial() // the kernel accepts it, the server does not
	if got, err := get(third, 300*time.Millisecond); err == nil || got != "" {
		t.Fatalf("third connection served while two are open: %q", got)
	}
	held[0].Close()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := third.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "200 OK") {
		t.Fatalf("third connection after one closed: %q %v", buf[:n], err)
	}
}

func TestListenerUnlimited(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if Listener(ln, 0) != ln || Listener(ln, -1) != ln {
		t.Fatal("max <= 0 wrapped the listener")
	}
}
