// Package limits bounds what one client can take from the public HTTP API: a cap on open
// connections for the whole server and an optional per-client-address, per-endpoint request
// rate. rust-teos has neither, so both are opt-in extensions (teos.toml api_max_connections,
// api_rate_limit, api_rate_burst); the body limits stay in httpapi, exactly as the protocol has them.
package limits

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/teos-go/teos/pkg/teos"
)

// TooManyRequests is the 429 body's message.
const TooManyRequests = "Too many requests"

// sweepEvery is how often idle buckets are dropped, so addresses seen once do not pile up.
const sweepEvery = time.Minute

// Listener accepts at most max simultaneous connections from l; further clients wait in the
// kernel's backlog until one closes. max <= 0 returns l unchanged.
func Listener(l net.Listener, max int) net.Listener {
	if max <= 0 {
		return l
	}
	return netutil.LimitListener(l, max)
}

// RateConfig sets the per-client-address, per-endpoint token bucket.
type RateConfig struct {
	// Rate is the sustained requests per second; 0 (or less) turns rate limiting off.
	Rate float64
	// Burst is how many requests may arrive at once; below 1 means max(1, ceil(Rate)).
	Burst int
	// Endpoints are the first path segments that get their own bucket ("register", ...);
	// any other path shares one bucket per address, so made-up paths cannot mint buckets.
	Endpoints []string
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// PublicEndpoints are the public API's routes (PROTOCOL.md section 5) and teos-go's extensions.
var PublicEndpoints = []string{"register", "add_appointment", "get_appointment", "get_subscription_info", "ping",
	"info", "add_appointments"}

// RateLimit wraps next with cfg's token buckets, keyed by the client's IP address (the
// host part of RemoteAddr: behind a reverse proxy every client shares the proxy's bucket)
// and endpoint. A request over the limit gets 429 with {"error": "Too many requests",
// "error_code": teos.ErrCodeTooManyRequests} and never reaches next. With cfg.Rate <= 0
// next is returned unchanged.
func RateLimit(next http.Handler, cfg RateConfig) http.Handler {
	if cfg.Rate <= 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return next
	}
	burst := float64(cfg.Burst)
	if cfg.Burst < 1 {
		burst = math.Max(1, math.Ceil(cfg.Rate))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	known := make(map[string]bool, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		known[e] = true
	}
	return &limiter{next: next, rate: cfg.Rate, burst: burst, now: now, known: known,
		buckets: make(map[bucketKey]*bucket), lastSweep: now()}
}

type bucketKey struct {
	addr     string
	endpoint string
}

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	next  http.Handler
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time
	known map[string]bool

	mu        sync.Mutex
	buckets   map[bucketKey]*bucket // guarded by mu
	lastSweep time.Time             // guarded by mu
}

func (l *limiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !l.allow(l.key(r)) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		// Fixed text: field order as in every other error body (PROTOCOL.md section 5.2).
		_, _ = w.Write([]byte(`{"error":"` + TooManyRequests + `","error_code":` + strconv.Itoa(teos.ErrCodeTooManyRequests) + `}`))
		return
	}
	l.next.ServeHTTP(w, r)
}

func (l *limiter) key(r *http.Request) bucketKey {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr // in-process callers may leave it odd; still one key per value
	}
	path, _ := strings.CutPrefix(r.URL.EscapedPath(), "/")
	endpoint, _, _ := strings.Cut(path, "/")
	if !l.known[endpoint] {
		endpoint = ""
	}
	return bucketKey{addr: addr, endpoint: endpoint}
}

// allow takes a token from key's bucket if it has one.
func (l *limiter) allow(key bucketKey) bool {
	t := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(t)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: t}
		l.buckets[key] = b
	}
	if elapsed := t.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep drops the buckets that have refilled: forgetting them changes nothing.
func (l *limiter) sweep(t time.Time) {
	for k, b := range l.buckets {
		if b.tokens+t.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = t
}

// size is the number of buckets held, for tests.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
