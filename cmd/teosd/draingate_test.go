package main

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/api/limits"
)

// TestDrainGateLetsWaitersThroughAtShutdown: a request waiting its turn at the rate limit is
// admitted when draining ends, and so is one arriving afterwards; one whose client left is not.
func TestDrainGateLetsWaitersThroughAtShutdown(t *testing.T) {
	rate := limits.NewRate(limits.RateConfig{Rate: 0.01, Burst: 1, MaxDelay: 1 << 40})
	draining, drain := context.WithCancel(context.Background())
	g := drainGate{inner: rate, draining: draining}
	addr := netip.MustParseAddr("192.0.2.1")
	a := httpapi.Admission{Client: clientaddr.Client{Addr: addr}, Endpoint: "add_appointment"}
	if _, err := g.Admit(context.Background(), a); err != nil { // the burst
		t.Fatal(err)
	}
	gone, leave := context.WithCancel(context.Background())
	waiting := make(chan error, 2)
	go func() { _, err := g.Admit(context.Background(), a); waiting <- err }()
	go func() { _, err := g.Admit(gone, a); waiting <- err }()
	for {
		if _, n := rate.Waiting(addr); n == 2 {
			break
		}
		select {
		case err := <-waiting:
			t.Fatalf("admitted before its turn: %v", err)
		default:
			runtime.Gosched()
		}
	}
	leave()
	if err := <-waiting; err == nil {
		t.Fatal("a client that left was admitted")
	}
	drain()
	if err := <-waiting; err != nil {
		t.Fatalf("waiting request at shutdown: %v", err)
	}
	if _, err := g.Admit(context.Background(), a); err != nil {
		t.Fatalf("request after shutdown began: %v", err)
	}
	if total, _ := rate.Waiting(addr); total != 0 {
		t.Fatalf("%d requests still counted as waiting", total)
	}
}
