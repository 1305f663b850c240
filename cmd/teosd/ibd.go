package main

import (
	"context"
	"log/slog"

	"github.com/teos-go/teos/internal/bitcoind"
)

// warnIfSyncing tells the operator that bitcoind is still in initial block download. teosd
// starts anyway, as rust-teos does, but from a tip that may be months old: subscriptions sold
// meanwhile end counted from that height, so they expire soon after bitcoind catches up.
// A failed query only skips the warning: bitcoind answered a moment ago.
func warnIfSyncing(ctx context.Context, btc *bitcoind.Client, log *slog.Logger) {
	s, err := btc.Sync(ctx)
	if err != nil || !s.InitialDownload {
		return
	}
	log.Warn("bitcoind is still in initial block download: teosd follows it from its current tip, "+
		"and until it catches up, new subscriptions end counted from that old height",
		"blocks", s.Blocks, "headers", s.Headers, "progress", s.Progress)
}
