package limits

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
)

// ListenerConfig bounds the connections a Listener hands out.
type ListenerConfig struct {
	// Max is the most connections open at once; further clients wait in the kernel's
	// accept queue until one closes. <= 0 means no limit.
	Max int
	// MaxPerAddress is the most connections open at once from one peer address (one /64
	// for IPv6, see clientaddr.Group); a
	// connection past it is closed (reset) as soon as it is accepted. <= 0 means no limit.
	MaxPerAddress int
	// Exempt peers (trusted reverse proxies) have no per-address cap: all their clients
	// share their address.
	Exempt func(netip.Addr) bool
	// FirstByte is how long a new connection may stay silent before the server hears its
	// first byte; past it the connection is closed. It is shorter than the server's header
	// timeout, which then applies to the rest of the headers. 0 means none.
	FirstByte time.Duration
}

// Listener wraps l with cfg's caps.
type Listener struct {
	net.Listener
	cfg   ListenerConfig
	slots chan struct{} // nil when Max <= 0
	done  chan struct{}
	close sync.Once

	mu      sync.Mutex
	perAddr map[netip.Addr]int // guarded by mu
	refused atomic.Int64
}

// NewListener wraps l with cfg's caps.
func NewListener(l net.Listener, cfg ListenerConfig) *Listener {
	ln := &Listener{Listener: l, cfg: cfg, done: make(chan struct{}), perAddr: make(map[netip.Addr]int)}
	if cfg.Max > 0 {
		ln.slots = make(chan struct{}, cfg.Max)
	}
	return ln
}

// Accept waits for a free slot, then for a connection from an address under its cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			l.release()
			return nil, err
		}
		peer := clientaddr.Peer(c.RemoteAddr().String())
		addr := clientaddr.Group(peer)
		capped := l.cfg.MaxPerAddress > 0 && !(l.cfg.Exempt != nil && l.cfg.Exempt(peer))
		if capped && !l.take(addr) {
			l.refused.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset frees both ends at once, no TIME_WAIT here
			}
			_ = c.Close()
			l.release()
			continue
		}
		return l.wrap(c, addr, capped), nil
	}
}

// Close closes the listener and unblocks Accept.
func (l *Listener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Refused is the number of connections closed at once for being over their address's cap.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Open is the number of connections open from addr (its /64 for IPv6; 0 for exempt
// addresses).
func (l *Listener) Open(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perAddr[clientaddr.Group(addr)]
}

func (l *Listener) take(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAddr[addr] >= l.cfg.MaxPerAddress {
		return false
	}
	l.perAddr[addr]++
	return true
}

func (l *Listener) give(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
		delete(l.perAddr, addr)
	}
}

func (l *Listener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *Listener) wrap(c net.Conn, addr netip.Addr, counted bool) net.Conn {
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

	started     atomic.Bool // a byte has been read
	mu          sync.Mutex
	firstByteBy time.Time
	wanted      time.Time // the read deadline the server asked for; guarded by mu
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
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
	c.closeOnce.Do(func() {
		if c.counted {
			c.l.give(c.addr)
		}
		c.l.release()
	})
	return err
}
