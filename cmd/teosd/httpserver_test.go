package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/httpapi"
)

var shortTimeouts = apiTimeouts{readHeader: 200 * time.Millisecond, read: 400 * time.Millisecond,
	write: 400 * time.Millisecond, idle: 300 * time.Millisecond}

func startAPIServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}), shortTimeouts)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// trickle writes s a byte at a time, every gap, until the server closes the connection; it
// returns how long the connection lasted and whether all of s got through.
func trickle(t *testing.T, c net.Conn, s string, gap time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c) // returns once the server closes
		close(closed)
	}()
	for i := range len(s) {
		select {
		case <-closed:
			return time.Since(start), false
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return time.Since(start), false
		}
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
	}
	return time.Since(start), true
}

func dialAPI(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSlowlorisHeadersCutOff trickles a request's headers: the server must drop the
// connection once ReadHeaderTimeout has passed, long before the headers are complete.
func TestSlowlorisHeadersCutOff(t *testing.T) {
	addr := startAPIServer(t)
	c := dialAPI(t, addr)
	headers := "GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200) + "\r\n\r\n"
	lasted, complete := trickle(t, c, headers, 20*time.Millisecond) // 4+ s if never cut off
	if complete {
		t.Fatalf("the whole trickled header got through (%v)", lasted)
	}
	if lasted > 2*time.Second {
		t.Fatalf("connection lasted %v, want about %v", lasted, shortTimeouts.readHeader)
	}
}

// TestSlowBodyCutOff sends headers at once and then trickles the body: ReadTimeout ends it.
func TestSlowBodyCutOff(t *testing.T) {
	addr := startAPIServer(t)
	c := dialAPI(t, addr)
	body := strings.Repeat("x", 200)
	if _, err := io.WriteString(c, "POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	lasted, complete := trickle(t, c, body, 20*time.Millisecond)
	if complete || lasted > 2*time.Second {
		t.Fatalf("slow body: lasted %v, complete %v", lasted, complete)
	}
}

// TestIdleConnectionClosed leaves a keep-alive connection idle after one request.
func TestIdleConnectionClosed(t *testing.T) {
	addr := startAPIServer(t)
	c := dialAPI(t, addr)
	if _, err := io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	got, err := io.ReadAll(c) // the response, then EOF when the idle timeout closes it
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v (after %v, got %q)", err, time.Since(start), got)
	}
	if !strings.Contains(string(got), "200 OK") {
		t.Fatalf("response %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle connection open for %v", d)
	}
}

func TestDefaultTimeoutsSet(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), defaultAPITimeouts)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("a zero timeout leaves slow clients unbounded: %+v", defaultAPITimeouts)
	}
	hold := 45 * time.Second
	if srv := newHTTPServer(http.NotFoundHandler(), apiTimeoutsFor(hold)); srv.WriteTimeout <= hold+srv.ReadTimeout {
		t.Fatalf("write timeout %v does not sit above the hold bound %v plus the body's read", srv.WriteTimeout, hold)
	}
}

// TestHeldRequestOutlivesReadTimeout: a request held past the read and write timeouts (but
// within the hold bound), once its body is in, keeps its context and gets its answer.
func TestHeldRequestOutlivesReadTimeout(t *testing.T) {
	to := shortTimeouts
	to.hold = 50 * to.read // far above the hold below: the answer's margin, on a loaded machine
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			return // cut off: the client sees no answer
		case <-time.After(3 * to.read): // held past the read and write timeouts together
		}
		_, _ = io.WriteString(w, "held and served")
	}), to)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	resp, err := http.Post("http://"+ln.Addr().String()+"/add_appointment", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatalf("held request cut off: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "held and served" {
		t.Fatalf("answer %q", body)
	}
}

// TestDelayedThenHeldRequestAnswered: a request the rate limit delays for its longest delay
// and the hold gate then holds for its bound (a bitcoind outage) still gets its answer: the
// write timeout covers both waits, one after the other.
func TestDelayedThenHeldRequestAnswered(t *testing.T) {
	to := apiTimeoutsFor(3 * shortTimeouts.read)
	to.readHeader, to.read, to.write, to.idle = shortTimeouts.readHeader, shortTimeouts.read, shortTimeouts.write, shortTimeouts.idle
	if to.delay <= 0 {
		t.Fatalf("apiTimeoutsFor leaves the rate limit's delay out: %+v", to)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(to.delay + to.hold) // the rate limit's wait, then the hold's
		_, _ = io.WriteString(w, "delayed, held and served")
	}), to)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	resp, err := http.Post("http://"+ln.Addr().String()+"/add_appointment", "application/json", strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatalf("delayed and held request cut off: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "delayed, held and served" {
		t.Fatalf("answer %q", body)
	}
}

// TestRateDelayWithoutHold: api_hold_timeout 0 still delays (the rate limit then uses its
// default delay), so the write timeout must cover that delay too.
func TestRateDelayWithoutHold(t *testing.T) {
	if got := rateMaxDelay(0); got <= 0 {
		t.Fatalf("rateMaxDelay(0) = %v", got)
	}
	srv := newHTTPServer(http.NotFoundHandler(), apiTimeoutsFor(0))
	if srv.WriteTimeout <= rateMaxDelay(0)+srv.ReadTimeout {
		t.Fatalf("write timeout %v does not cover the rate limit's delay %v plus the body's read", srv.WriteTimeout, rateMaxDelay(0))
	}
}

// TestLargeSlowBodyGetsItsTime: a body larger than the read timeout allows at uploadRate (a
// batch upload over Tor) gets the time it needs at that rate and its answer; a small body, or
// one declared past maxBody, is still cut at the read timeout.
func TestLargeSlowBodyGetsItsTime(t *testing.T) {
	to := shortTimeouts
	// At 512 B/s 4 KiB need 8 s, far past the 400 ms read timeout; 200 bytes need 390 ms.
	to.uploadRate, to.maxBody = 512, 8<<10
	started := make(chan struct{}, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			return // cut off: the client sees no answer
		}
		_, _ = io.WriteString(w, "read "+strconv.FormatInt(n, 10))
	}), to)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// send declares a body of length bytes and sends all of it but the last byte at once. The
	// last goes once the handler has run for twice the read timeout, which the plain timeout
	// (set before the handler ran) cannot cover on a machine of any pace. It returns what the
	// server answered.
	send := func(length int) string {
		c := dialAPI(t, ln.Addr().String())
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(c, "POST /add_appointments HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s",
			length, strings.Repeat("x", length-1)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("the handler never ran")
		}
		time.Sleep(2 * to.read)
		_, _ = io.WriteString(c, "x") // an error: the server closed the connection
		got, _ := io.ReadAll(io.LimitReader(c, 4096))
		return string(got)
	}
	if got := send(4 << 10); !strings.Contains(got, "200 OK") || !strings.Contains(got, "read 4096") {
		t.Fatalf("a 4 KiB body (needs 8 s at the upload rate) done after twice the read timeout was cut off; answer %q", got)
	}
	if got := send(200); !strings.HasPrefix(got, "HTTP/1.1 ") || strings.Contains(got, "read ") {
		t.Fatalf("a 200-byte body (needs 390 ms at the upload rate) done after twice the read timeout was not cut off: answer %q", got)
	}
	if got := send(16 << 10); !strings.HasPrefix(got, "HTTP/1.1 ") || strings.Contains(got, "read ") {
		t.Fatalf("a body past maxBody done after twice the read timeout got more time: answer %q", got)
	}
}

// TestDefaultUploadRateCoversBatches: the defaults extend the read deadline for every body
// size the API takes, up to the batch limit.
func TestDefaultUploadRateCoversBatches(t *testing.T) {
	to := defaultAPITimeouts
	if to.uploadRate <= 0 || to.maxBody < httpapi.MaxBodyBytes {
		t.Fatalf("default upload rate %d B/s up to %d B, want > 0 up to %d", to.uploadRate, to.maxBody, httpapi.MaxBodyBytes)
	}
}

// TestOptionsStarIsNotAllowed: "OPTIONS *" reaches the public API's handler and gets its 405,
// as rust-teos answers; net/http's own answer to it is an empty 200.
func TestOptionsStarIsNotAllowed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(httpapi.NewHandler(httpapi.Config{}), defaultAPITimeouts)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "OPTIONS * HTTP/1.1\r\nHost: tower\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusMethodNotAllowed || string(body) != "HTTP method not allowed" {
		t.Fatalf("OPTIONS *: %d %q, want 405 %q", resp.StatusCode, body, "HTTP method not allowed")
	}
}
