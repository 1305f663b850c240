package limits

import (
	"net/netip"
	"sync"

	"github.com/teos-go/teos/internal/api/clientaddr"
)

// Requests caps the requests in flight from one client that a trusted proxy forwarded.
// Their connections all come from the proxy, so the Listener's per-address cap cannot see
// them; this is the same cap, applied per request instead. Other clients are not counted:
// the Listener already bounds them.
type Requests struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int // guarded by mu
}

// NewRequests returns the cap, or nil (no cap) when max <= 0.
func NewRequests(max int) *Requests {
	if max <= 0 {
		return nil
	}
	return &Requests{max: max, n: make(map[netip.Addr]int)}
}

// Acquire counts a request of c; ok is false when c already has max in flight. release
// must be called once the request is answered.
func (r *Requests) Acquire(c clientaddr.Client) (release func(), ok bool) {
	if r == nil || !c.Forwarded {
		return func() {}, true
	}
	addr := clientaddr.Group(c.Addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n[addr] >= r.max {
		return nil, false
	}
	r.n[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.n[addr]--; r.n[addr] <= 0 {
				delete(r.n, addr)
			}
		})
	}, true
}

// InFlight is the number of requests in flight from addr (its /64 for IPv6).
func (r *Requests) InFlight(addr netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[clientaddr.Group(addr)]
}
