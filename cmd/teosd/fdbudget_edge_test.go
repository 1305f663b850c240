package main

import (
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// At or below the reserve, with both ports asking for no cap (0), each still gets a cap of
// at least one: a cap of 0 (or below) is "no cap" to the listeners, so a tower short of
// files would have served without any limit at all.
func TestConnBudgetsAtOrBelowTheReserve(t *testing.T) {
	cfg := config.Default()
	cfg.LndTowerBind = "127.0.0.1:9911"
	for _, nofile := range []int{1, fdReserve / 2, fdReserve - 1, fdReserve, fdReserve + 1} {
		for _, a := range []uint32{0, 1, 8192} {
			for _, l := range []uint32{0, 1, 1024} {
				cfg.APIMaxConnections, cfg.LndTowerMaxConnections = a, l
				api, lnd := connBudgets(&cfg, nofile)
				if api < 1 || lnd < 1 || api+lnd > max(nofile-fdReserve, 2) {
					t.Errorf("nofile %d, asked %d and %d: %d + %d", nofile, a, l, api, lnd)
				}
				if f := fitFrontEndConns(&cfg, nofile, nil); f.LndTowerMaxConnections != uint32(lnd) || lnd < 1 {
					t.Errorf("nofile %d, asked %d and %d: the lnd port given %d", nofile, a, l, f.LndTowerMaxConnections)
				}
			}
		}
	}
}
