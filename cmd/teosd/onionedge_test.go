package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/config"
)

func TestSplitConns(t *testing.T) {
	for _, c := range []struct {
		total                 int
		tor                   bool
		wantPublic, wantOnion int
	}{
		{8192, false, 8192, 0},
		{8192, true, 6144, 2048}, // the same budget in all
		{0, true, 0, 0},          // no cap: none for either
		{3, true, 2, 1},          // never 0 (no cap) for either
		{1, true, 1, 1},
	} {
		if p, o := splitConns(c.total, c.tor); p != c.wantPublic || o != c.wantOnion {
			t.Errorf("splitConns(%d, %v) = %d, %d; want %d, %d", c.total, c.tor, p, o, c.wantPublic, c.wantOnion)
		}
	}
}

// The onion clients' listener serves more connections from 127.0.0.1 at once than the
// per-address cap (all of tor's streams come from there), and names their client "onion".
func TestOnionListenerHasNoPerAddressCap(t *testing.T) {
	cfg := config.Default()
	cfg.APIMaxConnectionsPerAddress = 2
	const n = 6
	var (
		mu      sync.Mutex
		arrived int
		clients = map[string]int{}
		all     = make(chan struct{})
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		clients[clientaddr.Proxies{}.Client(r).String()]++
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select { // each holds its connection until all n are being served together
		case <-all:
		case <-r.Context().Done():
		}
	})
	o := &onionService{log: slog.New(slog.DiscardHandler)}
	if err := o.listen(&cfg, handler, defaultAPITimeouts); err != nil {
		t.Fatal(err)
	}
	go o.serveAPI()
	defer o.shutdownAPI(t.Context())
	if host, _, _ := net.SplitHostPort(o.lis.Addr().String()); host != "127.0.0.1" {
		t.Fatalf("onion target %s, want loopback", o.lis.Addr())
	}
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", o.lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
		fmt.Fprintf(c, "GET /ping HTTP/1.1\r\nHost: x.onion\r\n\r\n")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Minute)) // a guard against a hang, not a measure
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d of %d (cap %d per address): %v", i+1, n, cfg.APIMaxConnectionsPerAddress, err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if clients["onion"] != n || len(clients) != 1 {
		t.Fatalf("clients %v, want %d onion", clients, n)
	}
}
