package main

import (
	"net/http"
	"time"
)

// apiTimeouts bound how long one client may hold a public API connection, so a slow or
// stalled client (slowloris) is cut off instead of pinning a connection slot. They sit above
// the hold bound: a connection cut while its request is held is, to the CLN plugin, an
// appointment dropped.
type apiTimeouts struct {
	readHeader, read, write, idle time.Duration
	// hold is the longest a request is held during a transient fault (api_hold_timeout).
	hold time.Duration
}

var defaultAPITimeouts = apiTimeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second, // bodies are at most 2 KiB (PROTOCOL.md body limits)
	write:      30 * time.Second, // to answer once the request is served or refused
	idle:       2 * time.Minute,
}

// apiTimeoutsFor is defaultAPITimeouts for a hold bound.
func apiTimeoutsFor(hold time.Duration) apiTimeouts {
	to := defaultAPITimeouts
	to.hold = hold
	return to
}

// newHTTPServer is the public API's server with its timeouts. The body must arrive within
// read; the answer may then take hold+write. (net/http lifts the read deadline once the body
// is read, so a held request's context is not cancelled by it.)
func newHTTPServer(handler http.Handler, to apiTimeouts) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.read + to.hold + to.write,
		IdleTimeout:       to.idle,
	}
}
