package limits

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// serve runs an HTTP server on a loopback Listener with cfg.
func serve(t *testing.T, cfg ListenerConfig) (*Listener, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, cfg)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 30 * time.Second,
	}
	srv.ConnState = l.ConnState
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l, inner.Addr().String()
}

func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c (EOF or reset) rather than keeping
// it open; it waits at most wait for the answer.
func closedByServer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func get(t *testing.T, local, addr string) error {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func TestListenerPerAddressCap(t *testing.T) {
	l, addr := serve(t, ListenerConfig{Max: 100, MaxPerAddress: 3})
	attacker := netip.MustParseAddr("127.0.0.2")
	for range 3 {
		dialFrom(t, "127.0.0.2", addr)
	}
	waitOpen(t, l, attacker, 3)
	// The server resets the excess connection as it accepts it; on a busy machine the reset
	// can arrive before the dial returns.
	excess, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", addr)
	if err == nil {
		defer excess.Close()
		if !closedByServer(excess, 10*time.Second) {
			t.Fatal("a connection past the per-address cap was kept open")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial past the cap: %v", err)
	}
	waitRefused(t, l, 1)
	if l.Refused() != 1 || l.Open(attacker) != 3 {
		t.Fatalf("refused %d (want 1), open from the attacker %d (want 3)", l.Refused(), l.Open(attacker))
	}
	if err := get(t, "127.0.0.1", addr); err != nil {
		t.Fatalf("another address is served: %v", err)
	}
}

func TestListenerExemptAddressHasNoCap(t *testing.T) {
	proxy := netip.MustParseAddr("127.0.0.3")
	l, addr := serve(t, ListenerConfig{MaxPerAddress: 1, Exempt: func(a netip.Addr) bool { return a == proxy }})
	for range 3 {
		dialFrom(t, "127.0.0.3", addr)
	}
	if err := get(t, "127.0.0.3", addr); err != nil {
		t.Fatalf("a trusted proxy's fourth connection: %v", err)
	}
	if l.Refused() != 0 {
		t.Fatalf("%d connections of an exempt address refused", l.Refused())
	}
}

func TestListenerClosedConnectionsGiveTheirPlaceBack(t *testing.T) {
	l, addr := serve(t, ListenerConfig{Max: 2, MaxPerAddress: 1})
	for range 5 {
		if err := get(t, "127.0.0.1", addr); err != nil { // each closes its connection after
			t.Fatal(err)
		}
		waitOpen(t, l, netip.MustParseAddr("127.0.0.1"), 0)
	}
}

// TestListenerFirstByteDeadline: a connection that sends nothing is closed after
// FirstByte; one that has started its headers keeps the server's (longer) header timeout.
func TestListenerFirstByteDeadline(t *testing.T) {
	// Long enough that the server reads the started connection's first bytes before it
	// passes, even on a loaded machine (a read after the deadline fails unread).
	_, addr := serve(t, ListenerConfig{FirstByte: 2 * time.Second})
	silent := dialFrom(t, "127.0.0.1", addr)
	started := dialFrom(t, "127.0.0.1", addr)
	if _, err := io.WriteString(started, "GET /ping HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(silent, 20*time.Second) {
		t.Fatal("a silent connection outlived the first-byte deadline")
	}
	if closedByServer(started, 100*time.Millisecond) {
		t.Fatal("a connection that sent its first bytes was cut at the first-byte deadline")
	}
	if _, err := io.WriteString(started, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = started.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(started, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("the started request: %q %v", buf, err)
	}
}

func waitOpen(t *testing.T, l *Listener, addr netip.Addr, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Open(addr) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open from %s, want %d", l.Open(addr), addr, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitRefused waits until l has refused n connections: the refusal is counted on accept,
// which may come after the client saw the reset.
func waitRefused(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Refused() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// Full counts the times every place was taken and the listener stopped accepting; a place
// given back lets the next client in.
func TestListenerCountsWhenFull(t *testing.T) {
	l, addr := serve(t, ListenerConfig{Max: 2})
	first := dialFrom(t, "127.0.0.1", addr)
	waitStats(t, l, "one served", func(s ListenerStats) bool { return s.Serving == 1 })
	if s := l.Stats(); s.Full != 0 {
		t.Fatalf("full %d times with one of two places taken", s.Full)
	}
	dialFrom(t, "127.0.0.1", addr)
	waitStats(t, l, "full once", func(s ListenerStats) bool { return s.Serving == 2 && s.Full == 1 })
	third := dialFrom(t, "127.0.0.1", addr) // waits in the kernel's queue
	first.Close()
	// third is served in the place first gave back, and the listener is full again.
	waitStats(t, l, "full twice", func(s ListenerStats) bool { return s.Accepted == 3 && s.Serving == 2 && s.Full == 2 })
	if _, err := io.WriteString(third, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 12)
	if _, err := io.ReadFull(third, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("the third connection: %q %v", buf, err)
	}
}
