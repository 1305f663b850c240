package lndtower

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/teos-go/teos/internal/metrics"
)

// collectors are the front end's metrics. The counts are read from the store at scrape time
// (store.LndRecords.LndCounts), once for both gauges, and waited for at most countsWait (0:
// metrics.DefaultCountsWait): a database that does not answer leaves them out of the scrape
// instead of failing it, and every other metric of the tower with it.
func collectors(db counter, justiceTxs *atomic.Uint64, countsWait time.Duration) []prometheus.Collector {
	counts := metrics.NewBoundedGauges(countsWait, func() ([]float64, error) {
		s, u, err := db.Counts()
		return []float64{float64(s), float64(u)}, err
	},
		prometheus.NewDesc("teos_lnd_sessions", "lnd watchtower client sessions stored.", nil, nil),
		prometheus.NewDesc("teos_lnd_state_updates", "lnd watchtower client state updates stored.", nil, nil),
	)
	return []prometheus.Collector{
		counts,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "teos_lnd_justice_txs_total", Help: "Justice transactions for lnd clients handed to the responder since start.",
		}, func() float64 { return float64(justiceTxs.Load()) }),
	}
}
