package limits

import (
	"container/heap"
	"container/list"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
)

// DefaultParkTimeout is how long a parked connection waits for a place before it is reset.
const DefaultParkTimeout = 30 * time.Second

// ListenerConfig bounds the connections a Listener hands out.
type ListenerConfig struct {
	// Max is the most connections served at once; further clients wait in the kernel's
	// accept queue until one closes. <= 0 means no limit.
	Max int
	// MaxPerAddress is the most connections served at once from one peer address (one /64
	// for IPv6, see clientaddr.Group). A connection past it is parked, or reset as soon as
	// it is accepted when there is no room to park it. <= 0 means no limit.
	MaxPerAddress int
	// Exempt peers (trusted reverse proxies) have no per-address cap: all their clients
	// share their address.
	Exempt func(netip.Addr) bool
	// FirstByte is how long a served connection may stay silent before the server hears
	// its first byte; past it the connection is closed. It is shorter than the server's
	// header timeout, which then applies to the rest of the headers. For a parked
	// connection it counts from its promotion: its bytes wait unread in the kernel until
	// then. 0 means none.
	FirstByte time.Duration
	// MaxParked is the most connections parked at once: over their address's cap, they
	// are kept accepted but unread (no goroutine, one file descriptor each) until one of
	// the address's served connections closes, then served oldest first (with ConnState
	// hooked, a served connection idle between requests is closed for them). A client that
	// re-opens every connection the server closes then has nothing to re-open, and a
	// client behind a busy NAT waits in line instead of being reset. <= 0 parks none:
	// every connection past the cap is reset at once.
	MaxParked int
	// MaxParkedPerAddress is the most parked from one address; <= 0 means MaxParked.
	MaxParkedPerAddress int
	// ParkTimeout is how long, on average, a connection may stay parked before it is reset
	// (each waits between half and one and a half times it); <= 0 means DefaultParkTimeout.
	ParkTimeout time.Duration
}

// ListenerStats are a Listener's counts since it was made, and its connections now.
type ListenerStats struct {
	Accepted int64 // connections accepted from the kernel
	Reset    int64 // reset at once: over the address's cap with no room to park
	Parked   int64 // parked (each is later promoted, expired or closed with the listener)
	Promoted int64 // parked, then served
	Expired  int64 // parked, then reset after about ParkTimeout
	// Full counts the times every one of Max's places was taken: the listener stopped
	// accepting until a served connection closed, and new clients waited in the kernel's
	// accept queue meanwhile.
	Full int64
	// Serving and ParkedNow are the connections served (holding a slot) and parked now.
	Serving, ParkedNow int
}

// Listener wraps a net.Listener with caps. One goroutine accepts from the kernel, parks or
// resets what is over its address's cap and hands the rest to Accept; parked connections
// are promoted by the Close of a served connection of their address, and expired by one
// timer.
type Listener struct {
	net.Listener
	cfg   ListenerConfig
	slots chan struct{} // nil when Max <= 0
	done  chan struct{}
	close sync.Once

	handoff   chan accepted   // from the accepting goroutine to Accept
	wake      chan struct{}   // (capacity 1) a promoted connection is ready
	exited    chan struct{}   // closed when the accepting goroutine has returned
	stats     [6]atomic.Int64 // ListenerStats counters, in field order
	serving   atomic.Int64    // connections holding a slot
	wg        sync.WaitGroup  // the accepting goroutine
	mu        sync.Mutex      // guards the fields below
	perAddr   map[netip.Addr]int
	parked    map[netip.Addr]*list.List // of *parked, oldest first
	byDue     parkHeap                  // of *parked, the first due first
	nParked   int
	ready     []*conn                           // promoted, not yet returned by Accept
	idle      map[netip.Addr]map[*conn]struct{} // served, between requests (ConnState)
	janitor   *time.Timer                       // expires the parked that are due; armed for janitorAt
	janitorAt time.Time                         // the first due of byDue when the timer was armed; zero when not armed
	closed    bool
}

const (
	statAccepted = iota
	statReset
	statParked
	statPromoted
	statExpired
	statFull
)

type accepted struct {
	c   net.Conn
	err error
}

type parked struct {
	c     net.Conn
	addr  netip.Addr
	until time.Time
	index int // in byDue
	inQ   *list.Element
}

// NewListener wraps l with cfg's caps and starts accepting.
func NewListener(l net.Listener, cfg ListenerConfig) *Listener {
	if cfg.MaxParkedPerAddress <= 0 || cfg.MaxParkedPerAddress > cfg.MaxParked {
		cfg.MaxParkedPerAddress = cfg.MaxParked
	}
	if cfg.ParkTimeout <= 0 {
		cfg.ParkTimeout = DefaultParkTimeout
	}
	ln := &Listener{Listener: l, cfg: cfg, done: make(chan struct{}), handoff: make(chan accepted),
		wake: make(chan struct{}, 1), exited: make(chan struct{}),
		perAddr: make(map[netip.Addr]int), parked: make(map[netip.Addr]*list.List),
		idle: make(map[netip.Addr]map[*conn]struct{})}
	if cfg.Max > 0 {
		ln.slots = make(chan struct{}, cfg.Max)
	}
	ln.janitor = time.AfterFunc(time.Hour, ln.expire)
	ln.janitor.Stop()
	ln.wg.Add(1)
	go ln.acceptLoop()
	return ln
}

// Accept returns the next connection to serve: a promoted one first, else a new one.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if len(l.ready) > 0 {
			c := l.ready[0]
			l.ready[0] = nil
			l.ready = l.ready[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case a := <-l.handoff:
			return a.c, a.err
		case <-l.wake:
		case <-l.done:
			return nil, net.ErrClosed
		case <-l.exited:
			return nil, net.ErrClosed
		}
	}
}

// acceptLoop takes a slot, accepts, and serves, parks or resets the connection.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.exited)
	for {
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			default:
				l.stats[statFull].Add(1)
				select {
				case l.slots <- struct{}{}:
				case <-l.done:
					return
				}
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			l.release()
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) { // closed underneath: Accept says so from now on
				return
			}
			// net/http backs off on temporary errors before it calls Accept again, which
			// paces this loop too; it stops calling on the others (and closes the listener).
			select {
			case l.handoff <- accepted{err: err}:
			case <-l.done:
				return
			}
			continue
		}
		l.stats[statAccepted].Add(1)
		peer := clientaddr.Peer(c.RemoteAddr().String())
		addr := clientaddr.Group(peer)
		capped := l.cfg.MaxPerAddress > 0 && !(l.cfg.Exempt != nil && l.cfg.Exempt(peer))
		var lc *conn
		if capped {
			verdict, idle := l.admit(c, addr)
			switch verdict {
			case admitted:
			case parkedIt:
				l.release()
				if idle != nil { // its place goes to the connection just parked
					_ = idle.Close()
				}
				continue
			case refused:
				l.stats[statReset].Add(1)
				reset(c)
				l.release()
				continue
			}
		}
		lc = l.wrap(c, addr, capped)
		select {
		case l.handoff <- accepted{c: lc}:
		case <-l.done:
			_ = lc.Close()
			return
		}
	}
}

type parkVerdict int

const (
	admitted parkVerdict = iota
	parkedIt
	refused
)

// admit counts c against addr's cap, or parks it, or refuses it. Both in one critical
// section: a slot of addr freed in between would otherwise leave c parked with a free slot.
// A parked connection comes with one of addr's served connections that is idle between
// requests, if there is one, for the caller to close: the parked one is then served.
func (l *Listener) admit(c net.Conn, addr netip.Addr) (parkVerdict, *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAddr[addr] < l.cfg.MaxPerAddress {
		l.perAddr[addr]++
		return admitted, nil
	}
	q := l.parked[addr]
	if l.closed || l.nParked >= l.cfg.MaxParked || (q != nil && q.Len() >= l.cfg.MaxParkedPerAddress) {
		return refused, nil
	}
	if q == nil {
		q = list.New()
		l.parked[addr] = q
	}
	// Each waits ParkTimeout on average, drawn from [1/2, 3/2) of it: connections parked in
	// one burst do not all expire, and come back, in one burst.
	wait := l.cfg.ParkTimeout/2 + rand.N(l.cfg.ParkTimeout)
	p := &parked{c: c, addr: addr, until: time.Now().Add(wait)}
	p.inQ = q.PushBack(p)
	heap.Push(&l.byDue, p)
	l.nParked++
	l.stats[statParked].Add(1)
	if l.byDue[0] == p { // the first due now: the timer may be armed for later
		l.arm(p.until)
	}
	for idle := range l.idle[addr] {
		l.setIdle(idle, false) // closed once, even if another parks before it is
		return parkedIt, idle
	}
	return parkedIt, nil
}

// ConnState is for http.Server.ConnState: a served connection that falls idle between
// requests (keep-alive) while its address has parked connections is closed, so a client
// waiting parked does not wait for the idle timeout of another's pooled connection.
func (l *Listener) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || !c.counted {
		return
	}
	l.mu.Lock()
	if c.gone { // a late report must not mark a closed connection idle
		l.mu.Unlock()
		return
	}
	if state == http.StateIdle && l.parked[c.addr] != nil && !l.closed {
		l.setIdle(c, false)
		l.mu.Unlock()
		_ = c.Close()
		return
	}
	l.setIdle(c, state == http.StateIdle)
	l.mu.Unlock()
}

// setIdle records whether c is idle between requests. l.mu must be held.
func (l *Listener) setIdle(c *conn, idle bool) {
	c.idle.Store(idle)
	set := l.idle[c.addr]
	if !idle {
		if set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(l.idle, c.addr)
			}
		}
		return
	}
	if set == nil {
		set = make(map[*conn]struct{})
		l.idle[c.addr] = set
	}
	set[c] = struct{}{}
}

// arm sets the one expiry timer for t. A run of expire already under way is harmless: it
// takes what is due and arms the timer again. l.mu must be held.
func (l *Listener) arm(t time.Time) {
	l.janitorAt = t
	l.janitor.Reset(time.Until(t))
}

// unpark removes p from the queues. l.mu must be held.
func (l *Listener) unpark(p *parked) {
	q := l.parked[p.addr]
	q.Remove(p.inQ)
	if q.Len() == 0 {
		delete(l.parked, p.addr)
	}
	heap.Remove(&l.byDue, p.index)
	l.nParked--
}

// expire resets the connections parked longer than ParkTimeout and re-arms for the next.
func (l *Listener) expire() {
	var old []net.Conn
	l.mu.Lock()
	now := time.Now()
	for len(l.byDue) > 0 && !l.byDue[0].until.After(now) {
		p := l.byDue[0]
		l.unpark(p)
		old = append(old, p.c)
	}
	l.janitorAt = time.Time{}
	if len(l.byDue) > 0 && !l.closed {
		l.arm(l.byDue[0].until)
	}
	l.mu.Unlock()
	l.stats[statExpired].Add(int64(len(old)))
	for _, c := range old {
		reset(c)
	}
}

// served is called once when a served connection closes: its slot and its place in its
// address's count go to the oldest connection parked from that address, if any.
func (l *Listener) served(c *conn) {
	if c.counted {
		l.mu.Lock()
		c.gone = true
		l.setIdle(c, false)
		if q := l.parked[c.addr]; q != nil && !l.closed {
			p := q.Front().Value.(*parked)
			l.unpark(p)
			l.ready = append(l.ready, l.wrap(p.c, c.addr, true))
			l.mu.Unlock()
			l.serving.Add(-1) // wrap counted the promoted one
			l.stats[statPromoted].Add(1)
			select {
			case l.wake <- struct{}{}:
			default:
			}
			return
		}
		if l.perAddr[c.addr]--; l.perAddr[c.addr] <= 0 {
			delete(l.perAddr, c.addr)
		}
		l.mu.Unlock()
	}
	l.serving.Add(-1)
	l.release()
}

// Close closes the listener, unblocks Accept, waits for the accepting goroutine and
// resets the parked connections and the promoted ones Accept has not returned.
func (l *Listener) Close() error {
	l.close.Do(func() { close(l.done) })
	err := l.Listener.Close()
	l.wg.Wait()
	l.mu.Lock()
	l.closed = true
	var old []net.Conn
	for len(l.byDue) > 0 {
		p := l.byDue[0]
		l.unpark(p)
		old = append(old, p.c)
	}
	l.janitor.Stop()
	l.janitorAt = time.Time{}
	ready := l.ready
	l.ready = nil
	l.mu.Unlock()
	for _, c := range old {
		reset(c)
	}
	for _, c := range ready {
		_ = c.Close()
	}
	return err
}

// Refused is the number of connections reset at once for being over their address's cap
// with no room to park them.
func (l *Listener) Refused() int64 { return l.stats[statReset].Load() }

// Stats returns the counts since l was made and the connections served and parked now.
func (l *Listener) Stats() ListenerStats {
	l.mu.Lock()
	parkedNow := l.nParked
	l.mu.Unlock()
	return ListenerStats{
		Accepted: l.stats[statAccepted].Load(), Reset: l.stats[statReset].Load(),
		Parked: l.stats[statParked].Load(), Promoted: l.stats[statPromoted].Load(),
		Expired: l.stats[statExpired].Load(), Full: l.stats[statFull].Load(), Serving: int(l.serving.Load()), ParkedNow: parkedNow,
	}
}

// Max is the most connections served at once (ListenerConfig.Max; <= 0: no cap).
func (l *Listener) Max() int { return l.cfg.Max }

// Open is the number of connections served from addr (its /64 for IPv6; 0 for exempt
// addresses).
func (l *Listener) Open(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perAddr[clientaddr.Group(addr)]
}

// ParkedFrom is the number of connections parked from addr (its /64 for IPv6).
func (l *Listener) ParkedFrom(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.parked[clientaddr.Group(addr)]; q != nil {
		return q.Len()
	}
	return 0
}

func (l *Listener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

// reset closes c with a reset, which frees both ends at once (no TIME_WAIT here).
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (l *Listener) wrap(c net.Conn, addr netip.Addr, counted bool) *conn {
	l.serving.Add(1)
	lc := &conn{Conn: c, l: l, addr: addr, counted: counted}
	if l.cfg.FirstByte > 0 {
		lc.firstByteBy = time.Now().Add(l.cfg.FirstByte)
		_ = c.SetReadDeadline(lc.firstByteBy)
	} else {
		lc.started.Store(true)
	}
	return lc
}

// conn gives its slots back once, on Close, and holds the first-byte deadline: until the
// peer has sent something, no read deadline the server sets may be later than it.
type conn struct {
	net.Conn
	l         *Listener
	addr      netip.Addr
	counted   bool
	closeOnce sync.Once
	gone      bool        // closed; guarded by l.mu
	idle      atomic.Bool // in l.idle; written with l.mu held

	started     atomic.Bool // a byte has been read
	mu          sync.Mutex
	firstByteBy time.Time
	wanted      time.Time // the read deadline the server asked for; guarded by mu
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.idle.Load() {
		// The next request has begun: net/http reports it active only once its headers
		// are in, too late for a parked connection to close it.
		c.l.mu.Lock()
		c.l.setIdle(c, false)
		c.l.mu.Unlock()
	}
	if n > 0 && !c.started.Load() {
		c.mu.Lock()
		if !c.started.Load() {
			c.started.Store(true)
			_ = c.Conn.SetReadDeadline(c.wanted)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wanted = t
	return c.Conn.SetReadDeadline(c.effective(t))
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wanted = t
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetReadDeadline(c.effective(t))
}

// effective is t, or the first-byte deadline if that comes first. c.mu must be held.
func (c *conn) effective(t time.Time) time.Time {
	if c.started.Load() || (!t.IsZero() && t.Before(c.firstByteBy)) {
		return t
	}
	return c.firstByteBy
}

// CloseWrite keeps net/http's graceful half-close working through the wrapper.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.served(c) })
	return err
}

// parkHeap orders parked connections by when they are due to expire (container/heap).
type parkHeap []*parked

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h parkHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *parkHeap) Push(x any) {
	p := x.(*parked)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *parkHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
