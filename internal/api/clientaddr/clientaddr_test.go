package clientaddr

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClient(t *testing.T) {
	proxies, err := ParseProxies([]string{"127.0.0.1", " 10.0.0.0/8 ", "", "::ffff:192.168.0.0/112"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote, xff, realIP string
		want                      string
		forwarded                 bool
	}{
		{"untrusted peer, headers ignored", "203.0.113.7:1", "198.51.100.1", "198.51.100.2", "203.0.113.7", false},
		{"trusted peer, no headers", "127.0.0.1:1", "", "", "127.0.0.1", false},
		{"trusted peer, X-Forwarded-For", "127.0.0.1:1", "198.51.100.1", "", "198.51.100.1", true},
		{"right-most untrusted wins over forged left entries", "127.0.0.1:1", "1.1.1.1, 198.51.100.1, 10.1.2.3", "", "198.51.100.1", true},
		{"X-Forwarded-For before X-Real-IP", "127.0.0.1:1", "198.51.100.1", "198.51.100.9", "198.51.100.1", true},
		{"X-Real-IP alone", "127.0.0.1:1", "", "198.51.100.9", "198.51.100.9", true},
		{"ports and brackets", "127.0.0.1:1", "[2001:db8::1]:443", "", "2001:db8::1", true},
		{"garbage stops the walk", "127.0.0.1:1", "198.51.100.1, junk, 10.0.0.2", "", "10.0.0.2", true},
		{"all trusted: the left-most", "127.0.0.1:1", "10.0.0.5, 10.0.0.6", "", "10.0.0.5", true},
		{"garbage only: the proxy", "127.0.0.1:1", "junk", "also junk", "127.0.0.1", false},
		{"mapped peer and prefix", "[::ffff:192.168.1.1]:1", "198.51.100.1", "", "198.51.100.1", true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/ping", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if c.realIP != "" {
			r.Header.Set("X-Real-IP", c.realIP)
		}
		got := proxies.Client(r)
		if got.String() != c.want || got.Forwarded != c.forwarded {
			t.Errorf("%s: %v forwarded=%v, want %s forwarded=%v", c.name, got, got.Forwarded, c.want, c.forwarded)
		}
	}
	var none Proxies
	r := httptest.NewRequest("GET", "/ping", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := none.Client(r); got.String() != "127.0.0.1" || got.Forwarded {
		t.Errorf("no trusted proxies: %v", got)
	}
}

func TestParseProxiesErrors(t *testing.T) {
	for _, bad := range []string{"localhost", "10.0.0.0/33", "1.2.3"} {
		if _, err := ParseProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestGroup(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::",
		"fe80::1%eth0":         "fe80::",
		"::1":                  "::",
	} {
		if got := Group(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("Group(%s) = %s, want %s", in, got, want)
		}
	}
}

// Per-client budgets (the registration limit) key an IPv6 client by its /64, as every other
// limit groups it: rotating addresses within the /64 does not buy a fresh budget.
func TestKeyGroupsIPv6AndNamesOnion(t *testing.T) {
	a := Client{Addr: netip.MustParseAddr("2001:db8:1:2::1")}
	b := Client{Addr: netip.MustParseAddr("2001:db8:1:2:ffff::9")}
	c := Client{Addr: netip.MustParseAddr("2001:db8:1:3::1")}
	if a.Key() != b.Key() || a.Key() == c.Key() {
		t.Fatalf("keys %q %q %q: want the first two equal, the third different", a.Key(), b.Key(), c.Key())
	}
	if k := (Client{Addr: netip.MustParseAddr("192.0.2.7")}).Key(); k != "192.0.2.7" {
		t.Fatalf("IPv4 key %q", k)
	}
	if k := (Client{Onion: true}).Key(); k != "onion" {
		t.Fatalf("onion key %q", k)
	}
}
