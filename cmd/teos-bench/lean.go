package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// leanConn is one keep-alive HTTP/1.1 connection driven by hand: the request's head is
// written from a few bytes and the answer read with http.ReadResponse, without net/http's
// Transport (its per-connection goroutines, channels and pool cost the load generator tens of
// µs per request, CPU taken from a tower on the same machine). One worker owns it, so it
// carries one request at a time, as -c promises.
type leanConn struct {
	addr    string // host:port to dial
	host    string // the Host header
	path    string // the URL's path prefix, without a trailing slash
	timeout time.Duration

	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

func newLeanConn(rawURL string, timeout time.Duration) (*leanConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("-http lean speaks plain http, not %q", u.Scheme)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.EscapedPath()
	for len(path) > 0 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	return &leanConn{addr: addr, host: u.Host, path: path, timeout: timeout}, nil
}

// post sends body to endpoint ep and reads the whole answer. Any failure closes the
// connection; the next call dials again.
func (l *leanConn) post(ctx context.Context, ep string, body []byte) outcome {
	start := time.Now()
	reused := l.conn != nil
	status, raw, err := l.roundTrip(ctx, ep, body)
	if err != nil && reused && status == 0 && ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		// The server closed the idle connection as this request went out (as net/http's
		// Transport does, send it again on a new one; an add is idempotent).
		l.close()
		status, raw, err = l.roundTrip(ctx, ep, body)
	}
	if err != nil {
		l.close()
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
	}
	return outcome{status: status, body: raw, latency: time.Since(start), err: err}
}

func (l *leanConn) roundTrip(ctx context.Context, ep string, body []byte) (int, []byte, error) {
	if l.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", l.addr)
		if err != nil {
			return 0, nil, err
		}
		l.conn, l.br, l.bw = c, bufio.NewReaderSize(c, 4096), bufio.NewWriterSize(c, 4096)
	}
	conn := l.conn // the AfterFunc may run after close cleared l.conn
	if err := conn.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return 0, nil, err
	}
	// The deadline moved to the past wakes a read or write blocked when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	w := l.bw
	w.WriteString("POST ")
	w.WriteString(l.path)
	w.WriteString("/")
	w.WriteString(ep)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(l.host)
	w.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	w.WriteString("\r\n\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(l.br, nil)
	if err != nil {
		return 0, nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.Close {
		l.close() // the server ends the connection after this answer
	}
	return resp.StatusCode, raw, nil
}

func (l *leanConn) close() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn, l.br, l.bw = nil, nil, nil
	}
}
