package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/socks5test"
	"github.com/teos-go/teos/pkg/teos"
)

const testOnion = "fgwlvykbxtfpbmrodkkngtily43b4utnbp7bfsexss6jgiuwnxluewad.onion"

// The proxy gets the onion name itself (ATYP 3), resolves it and carries the whole exchange.
func TestProxyReachesOnionTower(t *testing.T) {
	f := newFakeTower(t)
	proxy := socks5test.Start(t, socks5test.Map(testOnion, 9814, f.srv.Listener.Addr().String()))
	callerClient := &http.Client{Timeout: 7 * time.Second}
	for name, opts := range map[string][]Option{
		"proxy only":             {WithProxy(proxy.Addr)},
		"proxy then http client": {WithProxy(proxy.Addr), WithHTTPClient(callerClient)},
		"http client then proxy": {WithHTTPClient(callerClient), WithProxy(proxy.Addr)},
	} {
		tw := New(testOnion+":9814", f.id, newUserKey(t), opts...)
		if _, err := tw.Register(context.Background()); err != nil {
			t.Fatalf("%s: register through the proxy: %v", name, err)
		}
		if tw.http.Timeout != 0 && tw.http.Timeout != callerClient.Timeout {
			t.Fatalf("%s: timeout %v lost", name, tw.http.Timeout)
		}
	}
	if callerClient.Transport != nil {
		t.Fatal("WithProxy changed the caller's http.Client")
	}
	reqs := proxy.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request reached the proxy")
	}
	for _, r := range reqs {
		if r.AddrType != 3 || r.Host != testOnion || r.Port != 9814 {
			t.Fatalf("proxy got %+v, want the name %s:9814 unresolved", r, testOnion)
		}
	}
	if f.count("/register") != 3 {
		t.Fatalf("tower saw %d registrations, want 3", f.count("/register"))
	}
}

// Without a proxy an onion tower is refused before any dial or name lookup.
func TestOnionWithoutProxy(t *testing.T) {
	tw := New("http://"+testOnion+":9814", testID(t), newUserKey(t), WithRetry(3, time.Millisecond))
	_, err := tw.Register(context.Background())
	if !errors.Is(err, ErrOnionNeedsProxy) {
		t.Fatalf("err = %v, want ErrOnionNeedsProxy", err)
	}
	if tw.Misbehaving() != nil {
		t.Fatal("a missing proxy marked the tower misbehaving")
	}
}

// A proxy that cannot reach the tower (Tor's answer for an unreachable onion) is a transport
// failure: retried, then returned; never an API rejection or misbehaviour.
func TestProxyRefusesConnect(t *testing.T) {
	proxy := socks5test.Start(t, func(string, int) (string, byte) { return "", socks5test.ReplyHostUnreachable })
	tw := New(testOnion+":9814", testID(t), newUserKey(t), WithProxy(proxy.Addr), WithRetry(2, time.Millisecond))
	_, err := tw.Register(context.Background())
	var apiErr *APIError
	if err == nil || errors.As(err, &apiErr) || tw.Misbehaving() != nil {
		t.Fatalf("err = %v, misbehaving %v", err, tw.Misbehaving())
	}
	if !strings.Contains(err.Error(), "host unreachable") {
		t.Fatalf("err = %v, want the proxy's reason", err)
	}
	if n := len(proxy.Requests()); n != 3 {
		t.Fatalf("%d attempts through the proxy, want 3 (1 + 2 retries)", n)
	}
}

func TestProxyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tw := New(testOnion+":9814", testID(t), newUserKey(t), WithProxy(addr), WithRetry(0, time.Millisecond))
	_, err = tw.Register(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want connection refused (the proxy's port)", err)
	}
}

func testID(t *testing.T) teos.UserID {
	t.Helper()
	return teos.UserIDFromPubKey(newUserKey(t).PubKey())
}
