package main

import (
	"io"
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
// read; the answer may then take hold+write. Once the body is read, its read deadline is
// lifted: net/http cancels a request's context when a read deadline passes while the handler
// runs, which would cut a held request off.
func newHTTPServer(handler http.Handler, to apiTimeouts) *http.Server {
	return &http.Server{
		Handler:           liftReadDeadline(handler),
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.read + to.hold + to.write,
		IdleTimeout:       to.idle,
	}
}

// liftReadDeadline clears the connection's read deadline once the request body is read to
// its end. The server sets a fresh deadline before it reads the next request.
func liftReadDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &eofBody{ReadCloser: r.Body, rc: http.NewResponseController(w)}
		}
		next.ServeHTTP(w, r)
	})
}

type eofBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	lifted bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
