//go:build unix

package main

import (
	"syscall"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// The held requests' bound leaves free a quarter of the connections the public listener
// actually has: api_max_connections as fitted to the open files limit (beside the lnd port,
// fdbudget.go) and less the onion listener's share, not as configured. Under a limit of 1300
// with the lnd port on, the public API gets 522 connections; a bound of 1024 (from the
// configured 8192) let held requests take all of them, so a request past the bound waited in
// the kernel's queue instead of a 503 at once, and /ping went unanswered.
func TestMaxHeldFitsTheListener(t *testing.T) {
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	const nofile = 1300
	if saved.Max < nofile {
		t.Skipf("hard open files limit %d < %d", saved.Max, nofile)
	}
	lowered := syscall.Rlimit{Cur: nofile, Max: saved.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved) })

	for _, c := range []struct {
		name       string
		lnd, tor   bool
		wantPublic int
	}{
		{"public API alone", false, false, 1044},
		{"beside the lnd port", true, false, 522},
		{"beside the lnd port, with the onion listener", true, true, 392},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			if c.lnd {
				cfg.LndTowerBind = "127.0.0.1:9911"
			}
			cfg.TorSupport = c.tor
			public, _ := splitConns(apiConnBudget(&cfg, fdLimit()), cfg.TorSupport)
			if public != c.wantPublic {
				t.Fatalf("public listener's cap %d, want %d", public, c.wantPublic)
			}
			if got := maxHeld(&cfg); got > public*3/4 {
				t.Fatalf("max held %d of the public listener's %d connections: want at most %d", got, public, public*3/4)
			}
		})
	}
}
