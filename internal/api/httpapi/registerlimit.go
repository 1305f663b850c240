package httpapi

import (
	"sync"
	"time"
)

// MsgRegistrationRate answers a registration over the per-address limit.
const MsgRegistrationRate = "Too many registrations from this address, try again later"

// RegistrationLimit lets each client (as Config.Proxies names it) register, or renew (each
// grants the same slots), at most perMinute times per minute. Further POST /register requests
// are answered as rust-teos answers a registration it cannot grant, 400 {"error",
// "error_code": 65}, which the CLN plugin reports to its user without marking the tower
// unreachable. Only registrations that succeed are counted.
type RegistrationLimit struct {
	max   float64 // tokens per minute, and the bucket's size
	now   func() time.Time
	mu    sync.Mutex
	addrs map[string]*regBucket
	swept time.Time
}

// NewRegistrationLimit returns the limit, or nil (no limit) for perMinute 0. now is the
// clock; nil means time.Now.
func NewRegistrationLimit(perMinute uint32, now func() time.Time) *RegistrationLimit {
	if perMinute == 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &RegistrationLimit{max: float64(perMinute), now: now, addrs: make(map[string]*regBucket)}
}

type regBucket struct {
	tokens float64
	at     time.Time
}

// take removes a token from addr's bucket, refilled at max per minute.
func (l *RegistrationLimit) take(addr string) bool {
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

// giveBack returns the token of a registration that granted nothing.
func (l *RegistrationLimit) giveBack(addr string) {
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
func (l *RegistrationLimit) sweep(now time.Time) {
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

// Take spends one of addr's registrations, reporting false when none is left; another front
// end (lnd's new sessions) applies registration_rate with its own limit through it.
func (l *RegistrationLimit) Take(addr string) bool { return l.take(addr) }

// GiveBack returns what Take spent for a registration that granted nothing.
func (l *RegistrationLimit) GiveBack(addr string) { l.giveBack(addr) }
