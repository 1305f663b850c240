package client

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/proxy"
)

// ErrOnionNeedsProxy is returned for a .onion tower without WithProxy: resolving the name
// locally would fail and leak it to the local resolver.
var ErrOnionNeedsProxy = errors.New("an onion tower is reachable only through a SOCKS5 proxy (Tor's SocksPort, e.g. 127.0.0.1:9050)")

// WithProxy sends every request through the SOCKS5 proxy at addr ("host:port", e.g. Tor's
// SocksPort), as the CLN watchtower plugin does for onion towers. Host names, .onion ones
// included, are resolved by the proxy, never locally. It replaces the Transport of the HTTP
// client (WithHTTPClient's, in whatever order the options come) and keeps its Timeout.
func WithProxy(addr string) Option { return func(t *Tower) { t.proxy = addr } }

// applyProxy wires t.proxy into t.http once all options are known.
func (t *Tower) applyProxy() {
	if t.proxy == "" {
		return
	}
	c := *t.http // a copy: the caller's client is left as it was
	c.Transport = socksTransport(t.proxy)
	t.http = &c
}

// socksTransport returns an HTTP transport that dials every host through the SOCKS5 proxy at
// addr, sending host names to the proxy unresolved.
func socksTransport(addr string) *http.Transport {
	direct := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	// SOCKS5 with no auth never fails to build; x/net's dialer sends a name as a domain
	// (ATYP 3), so the proxy resolves it.
	d, _ := proxy.SOCKS5("tcp", addr, nil, direct)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // no HTTP(S)_PROXY from the environment on top
	tr.DialContext = d.(proxy.ContextDialer).DialContext
	return tr
}

// isOnion reports whether rawURL names a .onion host.
func isOnion(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return strings.HasSuffix(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), ".onion")
}
