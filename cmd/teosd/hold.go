package main

import (
	"log/slog"
	"time"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/metrics"
)

// maxHeldRequests bounds the requests held during a fault: each holds a goroutine, a
// connection and a body of at most 2 KiB (a batch: 2.2 MB), so a flood during an outage is
// answered 503 rather than piling up.
const maxHeldRequests = 1024

// maxHeld is maxHeldRequests, and at most three quarters of the public listener's
// connections: the other connections stay free, so a request past the bound is answered 503
// at once instead of waiting in the kernel's accept queue, and /ping keeps answering.
func maxHeld(cfg *config.Config) int { return maxHeldFor(cfg, fdLimit()) }

// maxHeldFor is maxHeld under the open files limit nofile (<= 0: unknown). The listener's cap
// is taken as used, not as configured: fitted to the limit beside the lnd port (fdbudget.go)
// and less the onion listener's share, it can be far below api_max_connections.
func maxHeldFor(cfg *config.Config, nofile int) int {
	conns, _ := splitConns(apiConnBudget(cfg, nofile), cfg.TorSupport)
	if conns <= 0 {
		return maxHeldRequests
	}
	return max(1, min(maxHeldRequests, conns*3/4))
}

// blockFirstBound is the longest a request waits at each of its steps for a block being
// processed (internal/blockfirst): long enough for a big block, short enough that a long
// catch-up only slows requests down. An add over HTTP waits once in the handler and twice per
// run of the core call (a held add runs it twice), so apiTimeoutsFor budgets five times this.
const blockFirstBound = time.Second

// storeRetry is how often one held write tries the store again while it refuses writes.
const storeRetry = 100 * time.Millisecond

// bitcoindProbe is how often the bitcoind client calls an unreachable node, so held
// requests are released as soon as it answers rather than at the next chain poll.
const bitcoindProbe = 100 * time.Millisecond

// newHold builds the public API's hold: the gate and its two conditions, fed by the bitcoind
// client (OnReachability) and by the outcomes of store writes. *met, read when a held request
// is released, may be set later.
func newHold(cfg *config.Config, log *slog.Logger, met **metrics.Metrics) grpcapi.Hold {
	h := grpcapi.Hold{
		Gate: hold.New(hold.Config{
			Bound:   cfg.HoldTimeout(),
			MaxHeld: maxHeld(cfg),
			OnRelease: func(condition string, waited time.Duration, outcome string) {
				if *met != nil {
					(*met).ObserveHold(condition, waited, outcome)
				}
			},
		}),
		Bitcoind: hold.NewCondition("bitcoind", 0),
		Store:    hold.NewCondition("store", storeRetry),
	}
	h.Store.OnChange(func(up bool, cause error) {
		if up {
			log.Info("store accepts writes again; held requests released")
			return
		}
		log.Error("store refuses writes (disk full?): write requests are held", "for_at_most", cfg.HoldTimeout(), "err", cause)
	})
	return h
}

// onBitcoindReachability feeds the gate from the bitcoind client, which logs the change. When
// bitcoind is back it also signals pollNow, so the chain monitor catches up and sends queued
// hand-overs at once instead of at its next tick.
func onBitcoindReachability(h grpcapi.Hold, pollNow chan<- struct{}) func(bool, error) {
	return func(reachable bool, cause error) {
		if reachable {
			h.Bitcoind.Up()
			select {
			case pollNow <- struct{}{}:
			default: // a poll is already due
			}
		} else {
			h.Bitcoind.Down(cause)
		}
	}
}
