// Package metrics exposes the tower's Prometheus metrics: store counts read at scrape time,
// chain progress reported by the chain monitor's hook, per-endpoint counts and latencies from
// a middleware around the public HTTP API, and the Go runtime and process collectors. It uses
// its own registry, never the global one.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "teos"

// latencyBuckets spans a cached answer (sub-millisecond) to a stalled bitcoind (seconds).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// heldBuckets cover a rate-limit wait, up to its 45 s bound.
var heldBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 45, 60}

// Config says where the gauges read their values. A nil func leaves its metrics out.
type Config struct {
	// Counts returns the registered users, the appointments the watcher holds and the
	// responder's trackers. It is called once per scrape, never per request, and never twice
	// at once.
	Counts func() (users, appointments, trackers int, err error)
	// CountsWait is the longest a scrape waits for Counts (0: DefaultCountsWait); past it the
	// scrape is served without the three gauges.
	CountsWait time.Duration
	// Height is the height of the last block the tower processed.
	Height func() uint32
	// Reachable reports whether bitcoind answered the last call.
	Reachable func() bool
	// Held is how many public API requests are held right now (hold.Gate.Held).
	Held func() int
	// AuthFailures counts bitcoind's refusals of the RPC credentials.
	AuthFailures func() uint64
	// Endpoints are the public API's endpoint names; each gets its latency series from the
	// first scrape, so rate() has a starting point.
	Endpoints []string
	Logger    *slog.Logger
}

// Metrics holds the tower's registry and the instruments the rest of teosd feeds.
type Metrics struct {
	reg            *prometheus.Registry
	log            *slog.Logger
	blocks         prometheus.Counter
	blockSeconds   prometheus.Histogram
	requests       *prometheus.CounterVec
	requestSeconds *prometheus.HistogramVec
	hold           *holdMetrics
	heldSeconds    *prometheus.HistogramVec
}

// New builds the registry with every tower metric and the standard Go and process collectors.
func New(cfg Config) *Metrics {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: cfg.Logger.With("component", "metrics"),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "blocks_processed_total",
			Help:      "Blocks connected and processed by the tower since it started.",
		}),
		blockSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "block_processing_seconds",
			Help:      "Time to fetch, process and persist one connected block.",
			Buckets:   latencyBuckets,
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "http_requests_total",
			Help:      "Public API requests by endpoint, HTTP status and teos error_code (empty when none).",
		}, []string{"endpoint", "code", "error_code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "http_request_duration_seconds",
			Help:      "Public API request latency by endpoint.",
			Buckets:   latencyBuckets,
		}, []string{"endpoint"}),
		heldSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "http_request_held_seconds",
			Help:      "Time public API requests waited for the rate limit, by endpoint (requests that waited only).",
			Buckets:   heldBuckets,
		}, []string{"endpoint"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.blocks, m.blockSeconds, m.requests, m.requestSeconds, m.heldSeconds,
	)
	// Every endpoint shows up from the first scrape, so rate() has a starting point.
	for _, ep := range cfg.Endpoints {
		m.requestSeconds.WithLabelValues(ep)
	}
	m.hold = newHoldMetrics(m.reg, cfg)
	if cfg.Counts != nil {
		if cfg.CountsWait <= 0 {
			cfg.CountsWait = DefaultCountsWait
		}
		m.reg.MustRegister(newCountsCollector(cfg.Counts, cfg.CountsWait))
	}
	if cfg.Height != nil {
		height := cfg.Height
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "chain_height",
			Help:      "Height of the last block the tower processed.",
		}, func() float64 { return float64(height()) }))
	}
	if cfg.Reachable != nil {
		m.reg.MustRegister(newBoolGauge("bitcoind_reachable", "1 if the last call to bitcoind succeeded, 0 if not.", cfg.Reachable))
	}
	return m
}

// ObserveBlock records one connected block and how long it took; chain.Config.OnBlock calls it.
func (m *Metrics) ObserveBlock(took time.Duration) {
	m.blocks.Inc()
	m.blockSeconds.Observe(took.Seconds())
}

// Handler serves the registry in the Prometheus exposition format on /metrics and 404 on any
// other path. A store that cannot be counted fails only its own gauges, not the whole scrape.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{m.log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // counts its own failures in promhttp_metric_handler_errors_total
	}))
	return mux
}

// errorLog adapts slog to promhttp's logger.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Warn("scrape: " + fmt.Sprint(v...)) }

// DefaultCountsWait leaves the rest of a scrape time within Prometheus's default 10 s
// scrape_timeout when the store does not answer (a database cut off answers only at its
// operation timeout, 30 s): the whole scrape would fail, and every metric with it.
const DefaultCountsWait = 5 * time.Second

// newCountsCollector serves the three store counts, read in one call per scrape.
func newCountsCollector(counts func() (int, int, int, error), wait time.Duration) prometheus.Collector {
	read := func() ([]float64, error) {
		users, appointments, trackers, err := counts()
		return []float64{float64(users), float64(appointments), float64(trackers)}, err
	}
	return NewBoundedGauges(wait, read,
		prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "registered_users"),
			"Users registered with the tower (expired ones stay until they are cleaned up).", nil, nil),
		prometheus.NewDesc(prometheus.BuildFQName(namespace, "watcher", "appointments"),
			"Appointments the watcher is looking for in new blocks.", nil, nil),
		prometheus.NewDesc(prometheus.BuildFQName(namespace, "responder", "trackers"),
			"Penalty transactions the responder is tracking.", nil, nil),
	)
}
