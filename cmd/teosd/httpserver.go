package main

import (
	"net/http"
	"time"
)

// apiTimeouts bound how long one client may hold a public API connection, so a slow or
// stalled client (slowloris) is cut off instead of pinning a connection slot.
type apiTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultAPITimeouts = apiTimeouts{
	readHeader: 10 * time.Second,
	read:       30 * time.Second, // bodies are at most 2 KiB (PROTOCOL.md body limits)
	write:      30 * time.Second,
	idle:       2 * time.Minute,
}

// newHTTPServer is the public API's server with its timeouts.
func newHTTPServer(handler http.Handler, to apiTimeouts) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
	}
}
