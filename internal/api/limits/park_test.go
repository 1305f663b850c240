package limits

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pingRequest = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"

// answered reports whether the server answered the request already written on c within
// wait; false if it has not (yet) read it.
func answered(t *testing.T, c net.Conn, wait time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var got []byte
	buf := make([]byte, 512)
	for !strings.HasSuffix(string(got), "\r\n\r\nok") { // the whole answer, so the next starts clean
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) && len(got) == 0 {
			return false
		}
		if err != nil {
			t.Fatalf("answer: %q %v", got, err)
		}
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		t.Fatalf("answer: %q", got)
	}
	return true
}

// closedAfterDrain reads what is left on c and reports whether the server then closed it
// within wait.
func closedAfterDrain(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

func waitStats(t *testing.T, l *Listener, what string, ok func(ListenerStats) bool) ListenerStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := l.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v", what, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// TestListenerParksAndPromotesInOrder: past the cap a connection is parked (kept open,
// unread); when a served connection of its address closes, the oldest parked one is served.
func TestListenerParksAndPromotesInOrder(t *testing.T) {
	l, addr := serve(t, ListenerConfig{Max: 100, MaxPerAddress: 1, MaxParked: 10})
	nat := netip.MustParseAddr("127.0.0.2")
	served := dialFrom(t, "127.0.0.2", addr)
	waitOpen(t, l, nat, 1)
	first := dialFrom(t, "127.0.0.2", addr)
	waitStats(t, l, "one parked", func(s ListenerStats) bool { return s.ParkedNow == 1 })
	second := dialFrom(t, "127.0.0.2", addr)
	waitStats(t, l, "two parked", func(s ListenerStats) bool { return s.ParkedNow == 2 })
	write(t, second, pingRequest)
	if answered(t, second, 200*time.Millisecond) || closedByServer(first, 10*time.Millisecond) {
		t.Fatal("a parked connection was served or closed while its address was at its cap")
	}
	if l.ParkedFrom(nat) != 2 || l.Open(nat) != 1 || l.Refused() != 0 {
		t.Fatalf("parked %d (want 2), served %d (want 1), reset %d (want 0)", l.ParkedFrom(nat), l.Open(nat), l.Refused())
	}
	// Another address is served meanwhile.
	if err := get(t, "127.0.0.1", addr); err != nil {
		t.Fatal(err)
	}

	served.Close() // the server closes its end on EOF, and promotes the oldest parked
	s := waitStats(t, l, "one promoted", func(s ListenerStats) bool { return s.Promoted == 1 })
	if s.ParkedNow != 1 || s.Parked != 2 || l.Open(nat) != 1 {
		t.Fatalf("after one promotion: %+v, served from the address %d", s, l.Open(nat))
	}
	if answered(t, second, 200*time.Millisecond) {
		t.Fatal("the younger parked connection was served first")
	}
	// first, promoted, is served; then idle, it gives its place to second.
	write(t, first, pingRequest)
	if !answered(t, first, 10*time.Second) {
		t.Fatal("the promoted connection was not served")
	}
	if !answered(t, second, 10*time.Second) {
		t.Fatal("the second parked connection was not served after the first fell idle")
	}
	s = waitStats(t, l, "two promoted", func(s ListenerStats) bool { return s.Promoted == 2 })
	if s.ParkedNow != 0 || s.Expired != 0 || s.Reset != 0 {
		t.Fatalf("%+v", s)
	}
}

// TestListenerPromotedGetsItsOwnFirstByteWindow: a parked connection's first-byte deadline
// counts from its promotion, not from its accept: it was parked about as long as the
// window, and is still served when it speaks after the promotion.
func TestListenerPromotedGetsItsOwnFirstByteWindow(t *testing.T) {
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 10, FirstByte: 5 * time.Second})
	silent := dialFrom(t, "127.0.0.2", addr)
	waitOpen(t, l, netip.MustParseAddr("127.0.0.2"), 1)
	late := dialFrom(t, "127.0.0.2", addr)
	waitStats(t, l, "parked", func(s ListenerStats) bool { return s.ParkedNow == 1 })
	if !closedByServer(silent, 30*time.Second) {
		t.Fatal("the silent served connection outlived its first-byte deadline")
	}
	waitStats(t, l, "promoted", func(s ListenerStats) bool { return s.Promoted == 1 })
	write(t, late, pingRequest)
	if !answered(t, late, 10*time.Second) {
		t.Fatal("the promoted connection was not served")
	}
}

// TestListenerParkedExpire: a connection parked past ParkTimeout is reset.
func TestListenerParkedExpire(t *testing.T) {
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 10, ParkTimeout: 300 * time.Millisecond})
	dialFrom(t, "127.0.0.2", addr)
	waitOpen(t, l, netip.MustParseAddr("127.0.0.2"), 1)
	p := dialFrom(t, "127.0.0.2", addr)
	if !closedByServer(p, 30*time.Second) {
		t.Fatal("a parked connection outlived its park timeout")
	}
	s := waitStats(t, l, "expired", func(s ListenerStats) bool { return s.Expired == 1 })
	if s.ParkedNow != 0 || s.Promoted != 0 || s.Reset != 0 || l.ParkedFrom(netip.MustParseAddr("127.0.0.2")) != 0 {
		t.Fatalf("%+v", s)
	}
	// The address's queue is gone and parking works again: the next one is parked (not reset,
	// not served) and expires in turn. Its stay is short, so it is checked by the counts
	// after it, not by catching it parked.
	again := dialFrom(t, "127.0.0.2", addr)
	if !closedByServer(again, 30*time.Second) {
		t.Fatal("the connection parked again outlived its park timeout")
	}
	s = waitStats(t, l, "parked again and expired", func(s ListenerStats) bool { return s.Expired == 2 })
	if s.Parked != 2 || s.ParkedNow != 0 || s.Promoted != 0 || s.Reset != 0 {
		t.Fatalf("%+v", s)
	}
}

// dialReset dials from local and expects the server to reset the connection at once.
func dialReset(t *testing.T, local, addr string) {
	t.Helper()
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).Dial("tcp", addr)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial: %v", err)
		}
		return
	}
	defer c.Close()
	if !closedByServer(c, 10*time.Second) {
		t.Fatal("a connection past the park budget was kept open")
	}
}

// TestListenerParkBudgets: past its address's parked queue, or the whole budget, a
// connection is reset at once, as without parking.
func TestListenerParkBudgets(t *testing.T) {
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 2, MaxParkedPerAddress: 1})
	for i, from := range []string{"127.0.0.2", "127.0.0.3"} {
		dialFrom(t, from, addr)
		waitOpen(t, l, netip.MustParseAddr(from), 1)
		dialFrom(t, from, addr)
		waitStats(t, l, "parked", func(s ListenerStats) bool { return s.ParkedNow == i+1 })
	}
	dialReset(t, "127.0.0.2", addr) // its queue is full
	dialFrom(t, "127.0.0.4", addr)  // served: under its own cap
	waitOpen(t, l, netip.MustParseAddr("127.0.0.4"), 1)
	dialReset(t, "127.0.0.4", addr) // its queue is empty, the budget full
	s := waitStats(t, l, "two reset", func(s ListenerStats) bool { return s.Reset == 2 })
	if s.ParkedNow != 2 || s.Parked != 2 || s.Accepted != 7 {
		t.Fatalf("%+v", s)
	}
}

// TestListenerExemptAddressIsNeverParked: a trusted proxy's connections are all served.
func TestListenerExemptAddressIsNeverParked(t *testing.T) {
	proxy := netip.MustParseAddr("127.0.0.3")
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 10, Exempt: func(a netip.Addr) bool { return a == proxy }})
	for range 3 {
		dialFrom(t, "127.0.0.3", addr)
	}
	if err := get(t, "127.0.0.3", addr); err != nil {
		t.Fatalf("a trusted proxy's fourth connection: %v", err)
	}
	if s := l.Stats(); s.Parked != 0 || s.Reset != 0 || s.Accepted != 4 || s.Serving < 3 {
		t.Fatalf("exempt address: %+v", s)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// TestListenerCloseLeavesNothing: parked, promoted and expired connections cost no
// goroutine, and closing the server resets every parked connection: afterwards the
// process has the goroutines and file descriptors it had before.
func TestListenerCloseLeavesNothing(t *testing.T) {
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, ListenerConfig{Max: 50, MaxPerAddress: 2, MaxParked: 100, ParkTimeout: time.Hour})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(l) }()
	addr := inner.Addr().String()

	var clients []net.Conn
	dial := func() net.Conn {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		return c
	}
	for range 2 {
		dial()
	}
	waitOpen(t, l, netip.MustParseAddr("127.0.0.2"), 2)
	base := runtime.NumGoroutine() // the server's two connection goroutines are in
	for range 40 {
		dial()
	}
	waitStats(t, l, "40 parked", func(s ListenerStats) bool { return s.ParkedNow == 40 })
	if n := runtime.NumGoroutine(); n >= base+20 { // a goroutine each would be 40 more
		t.Errorf("40 parked connections: %d goroutines, %d before them", n, base)
	}
	clients[0].Close() // one promotion
	waitStats(t, l, "promoted", func(s ListenerStats) bool { return s.Promoted == 1 })

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients[1:] {
		if !closedByServer(c, 10*time.Second) {
			t.Fatalf("connection %d still open after the server closed", i+1)
		}
	}
	if s := l.Stats(); s.ParkedNow != 0 || s.Serving != 0 {
		t.Errorf("after Close: %+v", s)
	}
	for _, c := range clients {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines || openFDs(t) > fds {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d (before %d), fds %d (before %d)\n%s", runtime.NumGoroutine(), goroutines,
				openFDs(t), fds, strings.TrimSpace(string(buf[:runtime.Stack(buf, true)])))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenerExpiryTimerFollowsTheFirstDue: parked connections draw their wait at random,
// so a later one can be due first; the one timer is always armed for the first due.
func TestListenerExpiryTimerFollowsTheFirstDue(t *testing.T) {
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 100, ParkTimeout: time.Hour})
	dialFrom(t, "127.0.0.2", addr)
	waitOpen(t, l, netip.MustParseAddr("127.0.0.2"), 1)
	for i := range 30 {
		dialFrom(t, "127.0.0.2", addr)
		waitStats(t, l, "parked", func(s ListenerStats) bool { return s.ParkedNow == i+1 })
		l.mu.Lock()
		first, armed := l.byDue[0].until, l.janitorAt
		for _, p := range l.byDue {
			if p.until.Before(first) {
				first = p.until
			}
		}
		l.mu.Unlock()
		if !armed.Equal(first) {
			t.Fatalf("after %d parked: timer armed for %v, the first is due at %v", i+1, armed, first)
		}
	}
}

// TestListenerIdleKeepAliveGivesWayToParked: a served connection idle between requests
// (a client's pool) does not keep a parked client of its address waiting: it is closed when
// one parks, or when it falls idle while one is parked.
func TestListenerIdleKeepAliveGivesWayToParked(t *testing.T) {
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, MaxParked: 10})
	nat := netip.MustParseAddr("127.0.0.2")
	pooled := dialFrom(t, "127.0.0.2", addr)
	write(t, pooled, pingRequest)
	if !answered(t, pooled, 10*time.Second) {
		t.Fatal("no answer on the first connection")
	}
	waitOpen(t, l, nat, 1)
	// pooled is now idle: a new connection of the address parks, and takes its place.
	waiting := dialFrom(t, "127.0.0.2", addr)
	write(t, waiting, pingRequest)
	if !answered(t, waiting, 10*time.Second) {
		t.Fatal("a parked connection waited behind an idle keep-alive one")
	}
	if !closedAfterDrain(pooled, 10*time.Second) {
		t.Fatal("the idle connection was kept")
	}
	// waiting is busy with its next request's headers when a third parks: it keeps its
	// place until its request is answered, then gives it up.
	waitIdle := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); l.idleFrom(nat) != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections of the address idle, want %d", l.idleFrom(nat), n)
			}
		}
	}
	waitIdle(1) // the server has finished with its first request
	write(t, waiting, "GET /ping HTTP/1.1\r\n")
	waitIdle(0) // and has read the start of the next
	third := dialFrom(t, "127.0.0.2", addr)
	write(t, third, pingRequest)
	waitStats(t, l, "third parked", func(s ListenerStats) bool { return s.ParkedNow == 1 })
	if answered(t, third, 200*time.Millisecond) {
		t.Fatal("the third was served while the address's place was busy")
	}
	write(t, waiting, "Host: x\r\n\r\n")
	if !answered(t, waiting, 10*time.Second) {
		t.Fatal("the busy connection's request was not answered")
	}
	if !answered(t, third, 10*time.Second) {
		t.Fatal("the third parked connection was not served once the place fell idle")
	}
	if s := l.Stats(); s.Promoted != 2 || s.Reset != 0 || s.Expired != 0 {
		t.Fatalf("%+v", s)
	}
}

func (l *Listener) idleFrom(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.idle[addr])
}

// TestListenerInnerClosedEndsAccept: closing the wrapped listener directly ends Accept
// with net.ErrClosed and the accepting goroutine with it.
func TestListenerInnerClosedEndsAccept(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, ListenerConfig{MaxPerAddress: 1, MaxParked: 1})
	inner.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after the inner listener closed: %v", err)
	}
	l.wg.Wait()
}
