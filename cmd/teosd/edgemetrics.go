package main

import (
	"github.com/teos-go/teos/internal/api/limits"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/metrics"
)

// registerEdgeMetrics adds to met (nil: metrics_bind unset) the blocks-first gate's waits and,
// with tor_support, the onion clients' listener's connections (onionedge.go). Both are read
// from their owners' counters at scrape time.
func registerEdgeMetrics(met *metrics.Metrics, blocks *blockfirst.Gate, onion *onionService) {
	if met == nil {
		return
	}
	met.RegisterBlocksFirst(func() metrics.BlocksFirstWaits { return blocksFirstWaits(blocks.Snapshot()) })
	if onion == nil {
		return
	}
	if l, ok := onion.lis.(*limits.Listener); ok {
		met.RegisterOnionConnections(func() metrics.OnionConnections {
			s := l.Stats()
			return metrics.OnionConnections{Accepted: s.Accepted, Full: s.Full, Serving: s.Serving, Max: l.Max()}
		})
	}
}

// blocksFirstWaits is s in the metrics' units: seconds, and buckets keyed by their bound.
func blocksFirstWaits(s blockfirst.WaitStats) metrics.BlocksFirstWaits {
	w := metrics.BlocksFirstWaits{Waits: uint64(s.Waits), AtBound: uint64(s.Bounded), Seconds: s.Waited.Seconds(),
		Buckets: make(map[float64]uint64, len(s.Buckets)), Waiting: uint64(max(s.Waiting, 0))}
	for i, n := range s.Buckets {
		w.Buckets[blockfirst.WaitBuckets[i].Seconds()] = uint64(n)
	}
	return w
}
