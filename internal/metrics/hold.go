package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// holdBuckets span a bitcoind restart and the hold bound (api_hold_timeout, up to 600 s).
var holdBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120, 300, 600}

// holdMetrics count requests held while a transient fault of the tower lasted.
type holdMetrics struct {
	held    *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newHoldMetrics(reg *prometheus.Registry, cfg Config) *holdMetrics {
	h := &holdMetrics{
		held: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "api_held_requests_total",
			Help: "Public API requests held while a transient fault lasted, by the condition that held them " +
				"(bitcoind, store) and outcome (served; timeout: answered 503 past the bound; gone: the client left; " +
				"full: too many held already, answered 503 at once; stopped: released unserved as the tower stopped).",
		}, []string{"condition", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "api_hold_seconds",
			Help:      "How long held public API requests waited, by condition and outcome.",
			Buckets:   holdBuckets,
		}, []string{"condition", "outcome"}),
	}
	reg.MustRegister(h.held, h.seconds)
	if cfg.Held != nil {
		held := cfg.Held
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "api_held_requests",
			Help:      "Public API requests held right now.",
		}, func() float64 { return float64(held()) }))
	}
	if cfg.AuthFailures != nil {
		failures := cfg.AuthFailures
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "bitcoind_auth_failures_total",
			Help:      "Calls bitcoind refused for their credentials (HTTP 401/403) after the cookie was read again.",
		}, func() float64 { return float64(failures()) }))
	}
	return h
}

// ObserveHold records one held request: the condition that held it, how long it waited and
// its outcome (hold.Config.OnRelease).
func (m *Metrics) ObserveHold(condition string, waited time.Duration, outcome string) {
	m.hold.held.WithLabelValues(condition, outcome).Inc()
	m.hold.seconds.WithLabelValues(condition, outcome).Observe(waited.Seconds())
}
