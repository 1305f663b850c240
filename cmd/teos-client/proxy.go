package main

import (
	"fmt"
	"net"
	"strings"
)

// proxyNone on the command line stops using the proxy saved with the tower.
const proxyNone = "none"

// checkProxy validates a --proxy value or a saved one: host:port, or none (flag only).
func checkProxy(p string, flagValue bool) error {
	if flagValue && (p == "" || p == proxyNone) {
		return nil
	}
	if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
		if flagValue {
			return fmt.Errorf("--proxy %q: want host:port, or %s", p, proxyNone)
		}
		return fmt.Errorf("proxy %q: want host:port", p)
	}
	return nil
}

// normalizeURL spells a tower URL as client.New keeps it (Tower.URL), so a URL given on
// the command line compares equal to the saved one.
func normalizeURL(u string) string {
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}

// proxyFor is the proxy to reach url with: --proxy if given, else the one saved with that
// tower, if any.
func (a *app) proxyFor(url string, saved *savedTower) string {
	switch {
	case a.proxy == proxyNone:
		return ""
	case a.proxy != "":
		return a.proxy
	case saved != nil && saved.URL == url:
		return saved.Proxy
	}
	return ""
}

// rememberProxy saves a --proxy given on the command line with the saved tower once a
// response came back through it: a proxy that did not work, a command refused before any
// request (an onion tower without a proxy) or one that needed no request leaves the file as
// it was.
func (a *app) rememberProxy() error {
	if a.proxy == "" || a.connected == "" || !a.reached.Load() {
		return nil
	}
	// Read again, under the lock: register has just written the file, or another run may have.
	return a.updateTower(a.dir, func(saved *savedTower) (*savedTower, error) {
		if saved == nil || saved.URL != a.connected || saved.Proxy == a.proxyFor(a.connected, nil) {
			return nil, nil
		}
		saved.Proxy = a.proxyFor(a.connected, nil)
		return saved, nil
	})
}
