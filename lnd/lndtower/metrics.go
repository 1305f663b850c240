package lndtower

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// collectors are the front end's metrics; the counts are read from the store at scrape time
// (store.LndRecords.LndCounts).
func collectors(db *DB, justiceTxs *atomic.Uint64) []prometheus.Collector {
	count := func(pick func(sessions, updates int) int) func() float64 {
		return func() float64 {
			s, u, err := db.Counts()
			if err != nil {
				return -1 // a failed read shows as -1 rather than a plausible 0
			}
			return float64(pick(s, u))
		}
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "teos_lnd_sessions", Help: "lnd watchtower client sessions stored.",
		}, count(func(s, _ int) int { return s })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "teos_lnd_state_updates", Help: "lnd watchtower client state updates stored.",
		}, count(func(_, u int) int { return u })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teos_lnd_justice_txs_total", Help: "Justice transactions for lnd clients handed to the responder since start.",
		}, func() float64 { return float64(justiceTxs.Load()) }),
	}
}
