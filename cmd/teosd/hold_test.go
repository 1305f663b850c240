package main

import (
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// Held requests never take every connection: a request past the bound must reach the server
// to be answered 503 at once.
func TestMaxHeldLeavesConnections(t *testing.T) {
	for _, tc := range []struct {
		conns uint32
		want  int
	}{{0, maxHeldRequests}, {1024, 768}, {10000, maxHeldRequests}, {2, 1}, {1, 1}} {
		cfg := config.Default()
		cfg.APIMaxConnections = tc.conns
		if got := maxHeldFor(&cfg, 0); got != tc.want { // no known open files limit
			t.Errorf("api_max_connections %d: max held %d, want %d", tc.conns, got, tc.want)
		}
	}
}
