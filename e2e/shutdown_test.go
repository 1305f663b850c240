package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownServesRateDelayedAdd: an add_appointment waiting its turn at the rate limit when
// teosd gets SIGTERM is served (and durable) rather than left waiting past the shutdown
// bound, cut off, and teosd exits 0. Before, the HTTP server's shutdown timed out on it and
// teosd exited 1 with "context deadline exceeded".
func TestShutdownServesRateDelayedAdd(t *testing.T) {
	node := startNode(t)
	// One add per 20 s past a burst of one: the second add waits ~20 s, below the 45 s hold
	// bound (so it is delayed, not refused) and above the 10 s shutdown bound.
	tw := newTower(t, node, "api_rate_limit = 0.05\napi_rate_burst = 1\n")
	tw.start("--debug") // logs each request as its handler starts
	alice := newUser(t)
	alice.register(t, tw)
	alice.add(t, tw, randomAppointment(t, 100)) // takes the burst

	delayed := randomAppointment(t, 100)
	body, err := json.Marshal(alice.addRequest(delayed))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		raw  []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tw.apiURL+"/add_appointment", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, raw, err}
	}()
	// Stop teosd once the delayed add's handler runs (it then waits at the rate limit, or is
	// about to): a request still on an idle keep-alive connection could be closed unread.
	for strings.Count(tw.logs(), "msg=request component=httpapi method=POST endpoint=add_appointment") < 2 {
		select {
		case r := <-done:
			t.Fatalf("delayed add answered before the stop: %d %s, err %v", r.code, r.raw, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = tw.cmd.Process.Signal(syscall.SIGTERM)
	<-tw.done
	r := <-done
	if err := tw.exitErr(); err != nil {
		t.Fatalf("teosd exit on SIGTERM: %v (add answered %d %s, err %v)", err, r.code, r.raw, r.err)
	}
	if r.err != nil || r.code != http.StatusOK {
		t.Fatalf("delayed add at shutdown: %d %s, err %v", r.code, r.raw, r.err)
	}

	tw.start()
	if code, out := alice.get(t, tw, delayed.Locator); code != http.StatusOK {
		t.Fatalf("acknowledged add not kept over the restart: %d %v", code, out)
	}
	tw.stop()
}

// TestShutdownWithSlowClient: a client still sending its request body when teosd gets
// SIGTERM does not turn the stop into a failure: teosd closes its connection at the shutdown
// bound and exits 0. Before, it exited 1 with "context deadline exceeded".
func TestShutdownWithSlowClient(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start("--debug") // logs each request as its handler starts
	c, err := net.Dial("tcp", strings.TrimPrefix(tw.apiURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers and the first bytes of a body that never completes (within the read timeout).
	if _, err := io.WriteString(c, "POST /register HTTP/1.1\r\nHost: tower\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user_id\":"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(tw.logs(), "msg=request component=httpapi method=POST endpoint=register"); {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never reached its handler\n%s", tw.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = tw.cmd.Process.Signal(syscall.SIGTERM)
	<-tw.done
	if err := tw.exitErr(); err != nil {
		t.Fatalf("teosd exit on SIGTERM with a slow client: %v\n%s", err, tw.logs())
	}
}

// TestSecondSignalEndsAtOnce: while teosd waits out its shutdown bound (here for a slow
// client), a second SIGTERM ends it at once, as the default action does.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start("--debug")
	c, err := net.Dial("tcp", strings.TrimPrefix(tw.apiURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /register HTTP/1.1\r\nHost: tower\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, tw, "msg=request component=httpapi method=POST endpoint=register", 1)
	_ = tw.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, tw, "a second SIGTERM or Ctrl-C ends teosd at once", 1)
	_ = tw.cmd.Process.Signal(syscall.SIGTERM)
	<-tw.done
	var exit *exec.ExitError
	if err := tw.exitErr(); !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("teosd after a second SIGTERM: %v, want ended by the signal\n%s", err, tw.logs())
	}
}
