package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// MsgRegistrationRate answers a registration over the per-address limit.
const MsgRegistrationRate = "Too many registrations from this address, try again later"

// ClientAddr is the address a request is accounted to: the host part of RemoteAddr. It is
// the one place that decides it, so a trusted-proxy rule can later replace it.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// LimitRegistrations lets each client address register (or renew: each grants the same
// slots) at most perMinute times per minute through next; further POST /register requests are
// answered as rust-teos answers a registration it cannot grant, 400 {"error", "error_code":
// 65}, which the CLN plugin reports to its user without marking the tower unreachable. Only
// registrations that succeed are counted. perMinute 0 returns next unchanged. client names a
// request's client (behind a trusted proxy, the forwarded address); nil means the peer.
func LimitRegistrations(next http.Handler, perMinute uint32, now func() time.Time, client func(*http.Request) string) http.Handler {
	if perMinute == 0 {
		return next
	}
	if now == nil {
		now = time.Now
	}
	if client == nil {
		client = ClientAddr
	}
	return &registrationLimiter{next: next, max: float64(perMinute), now: now, client: client, addrs: make(map[string]*regBucket)}
}

type registrationLimiter struct {
	next   http.Handler
	max    float64 // tokens per minute, and the bucket's size
	now    func() time.Time
	client func(*http.Request) string
	mu     sync.Mutex
	addrs  map[string]*regBucket
	swept  time.Time
}

type regBucket struct {
	tokens float64
	at     time.Time
}

func (l *registrationLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || firstSegment(r.URL.EscapedPath()) != "register" {
		l.next.ServeHTTP(w, r)
		return
	}
	addr := l.client(r)
	if !l.take(addr) {
		(&handler{logger: slog.New(slog.DiscardHandler)}).writeJSON(w, http.StatusBadRequest, ErrorBody{Message: MsgRegistrationRate, Code: teos.ErrCodeRegistrationResourceExhausted})
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	l.next.ServeHTTP(sw, r)
	if sw.status != http.StatusOK {
		l.giveBack(addr) // nothing was granted
	}
}

// take removes a token from addr's bucket, refilled at max per minute.
func (l *registrationLimiter) take(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	b, ok := l.addrs[addr]
	if !ok {
		b = &regBucket{tokens: l.max, at: now}
		l.addrs[addr] = b
	}
	b.refill(now, l.max)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *registrationLimiter) giveBack(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.addrs[addr]; ok {
		b.tokens = min(b.tokens+1, l.max)
	}
}

func (b *regBucket) refill(now time.Time, max float64) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(max, b.tokens+el.Minutes()*max)
		b.at = now
	}
}

// sweep drops full buckets once a minute, so addresses seen once do not pile up.
func (l *registrationLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for addr, b := range l.addrs {
		if b.refill(now, l.max); b.tokens >= l.max {
			delete(l.addrs, addr)
		}
	}
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
