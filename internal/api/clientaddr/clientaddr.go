// Package clientaddr names the client of a public API request: the TCP peer, or, when the
// peer is a reverse proxy the operator trusts (teos.toml api_trusted_proxies), the address
// the proxy says it forwarded for. Headers from any other peer are ignored, so a client
// cannot pick its own address to dodge the rate limit or blame someone else.
package clientaddr

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies is the set of trusted reverse proxies. The zero value trusts no one.
type Proxies struct {
	prefixes []netip.Prefix
}

// ParseProxies reads addresses ("10.0.0.1", "::1") and CIDR prefixes ("10.0.0.0/8").
// Blank entries are skipped; anything else that does not parse is an error naming it.
func ParseProxies(list []string) (Proxies, error) {
	var p Proxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			prefix, err := netip.ParsePrefix(s)
			if err != nil {
				return Proxies{}, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			p.prefixes = append(p.prefixes, unmapPrefix(prefix.Masked()))
			continue
		}
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return Proxies{}, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		addr = addr.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return p, nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96), as addresses are unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// Empty reports whether no proxy is trusted.
func (p Proxies) Empty() bool { return len(p.prefixes) == 0 }

// Trusted reports whether addr is one of the trusted proxies.
func (p Proxies) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, prefix := range p.prefixes {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// Client is who sent a request.
type Client struct {
	// Addr is the client's address; invalid when the peer's address could not be read
	// (only in-process callers).
	Addr netip.Addr
	// Forwarded is true when Addr came from a trusted proxy's header rather than the peer.
	Forwarded bool
	// Onion is true when the request came over Tor, through the onion service's own
	// listener: Addr is then invalid, as every onion client reaches it from tor on loopback.
	Onion bool
}

// Key names the client for per-client budgets: its address grouped as every limit groups them
// (an IPv6 client by its /64, which it can rotate within), "onion" for every client that came
// over Tor, or "unknown".
func (c Client) Key() string {
	if c.Onion || !c.Addr.IsValid() {
		return c.String()
	}
	return Group(c.Addr).String()
}

// String is the address, "onion" for a client that came over Tor, or "unknown".
func (c Client) String() string {
	if c.Onion {
		return "onion"
	}
	if !c.Addr.IsValid() {
		return "unknown"
	}
	return c.Addr.String()
}

// Peer is the address of the TCP peer in r.RemoteAddr ("host:port").
func Peer(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, _ := netip.ParseAddr(host) // invalid on error
	return addr.Unmap().WithZone("")
}

type onionKey struct{}

// WithOnion marks ctx as a connection's context from the onion service's listener (use it
// as http.Server.ConnContext): its requests came over Tor.
func WithOnion(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, onionKey{}, true)
}

// Client names r's client. Over Tor (WithOnion): the onion client, whatever its headers say
// (tor adds none, so any there are the client's own). From a trusted proxy: the right-most X-Forwarded-For entry
// that is not itself a trusted proxy (each proxy appends the peer it saw, so entries left
// of it may have been written by the client), else X-Real-IP, else the proxy itself.
// From anyone else: the peer.
func (p Proxies) Client(r *http.Request) Client {
	if onion, _ := r.Context().Value(onionKey{}).(bool); onion {
		return Client{Onion: true}
	}
	peer := Peer(r.RemoteAddr)
	if !peer.IsValid() || !p.Trusted(peer) {
		return Client{Addr: peer}
	}
	if addr, ok := p.fromForwardedFor(r.Header.Values("X-Forwarded-For")); ok {
		return Client{Addr: addr, Forwarded: true}
	}
	if addr, ok := parseHostMaybePort(r.Header.Get("X-Real-IP")); ok {
		return Client{Addr: addr, Forwarded: true}
	}
	return Client{Addr: peer}
}

// fromForwardedFor walks the X-Forwarded-For entries right to left (several headers are
// one list, in order). An entry that does not parse ends the walk: what is left of it
// cannot be trusted either.
func (p Proxies) fromForwardedFor(headers []string) (netip.Addr, bool) {
	var entries []string
	for _, h := range headers {
		entries = append(entries, strings.Split(h, ",")...)
	}
	var last netip.Addr
	for i := len(entries) - 1; i >= 0; i-- {
		addr, ok := parseHostMaybePort(entries[i])
		if !ok {
			break
		}
		if !p.Trusted(addr) {
			return addr, true
		}
		last = addr
	}
	// Every entry was a trusted proxy: the left-most is the closest we know to the client.
	return last, last.IsValid()
}

// parseHostMaybePort reads "1.2.3.4", "1.2.3.4:80", "::1" or "[::1]:80".
func parseHostMaybePort(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if addr, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return addr.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// Group is the unit the limits count by: the address itself for IPv4, its /64 for IPv6,
// since one IPv6 host usually holds a whole /64 and could otherwise take a fresh
// address for every connection.
func Group(addr netip.Addr) netip.Addr {
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return addr
}
