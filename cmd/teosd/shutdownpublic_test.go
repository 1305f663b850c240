package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/config"
)

// A stop closes the onion clients' listener as it closes the clearnet one, and gives each
// server the whole bound for its requests in flight. Stopped one after the other, a clearnet
// request still running (a slow client, a request in the core) kept the onion listener
// accepting until the bound, and its requests accepted meanwhile were then cut at once:
// refused, an onion client's CLN plugin keeps the appointment pending (a failed connect), cut
// after sending it, it drops it.
func TestShutdownClosesBothPublicListenersAtOnce(t *testing.T) {
	release := make(chan struct{})
	inHandler := make(chan struct{}, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case inHandler <- struct{}{}:
		default:
		}
		<-release // a request still being served when the stop begins
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(handler, defaultAPITimeouts)
	go srv.Serve(lis)
	defer srv.Close()
	cfg := config.Default()
	onion := &onionService{log: slog.New(slog.DiscardHandler)}
	if err := onion.listen(&cfg, http.NotFoundHandler(), defaultAPITimeouts); err != nil {
		t.Fatal(err)
	}
	go onion.serveAPI()
	defer onion.srv.Close()

	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + lis.Addr().String() + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	<-inHandler
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // the stop's bound, far off
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- shutdownPublic(ctx, srv, onion, slog.New(slog.DiscardHandler)) }()

	// The onion listener must refuse new connections while the clearnet request still runs.
	guard := time.After(30 * time.Second) // a guard against a hang, not a measure
	for refused := false; !refused; {
		c, err := net.Dial("tcp", onion.lis.Addr().String())
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET): // reset: it was in the closed listener's queue
			refused = true
		case err != nil:
			t.Fatalf("dial the onion listener: %v", err)
		default:
			fmt.Fprintf(c, "GET /ping HTTP/1.1\r\nHost: x.onion\r\n\r\n")
			c.Close()
		}
		select {
		case <-guard:
			close(release)
			t.Fatal("the onion listener kept accepting while the clearnet server waited for its request")
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	if err := <-answered; err != nil {
		t.Errorf("clearnet request in flight at the stop: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}
