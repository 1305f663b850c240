package metrics

import "github.com/prometheus/client_golang/prometheus"

// OnionConnections are the onion clients' listener's counts (limits.ListenerStats): tor's
// target, with its own share of the connection budget and no per-address cap.
type OnionConnections struct {
	Accepted, Full int64
	Serving, Max   int // Max <= 0: no cap
}

// RegisterOnionConnections adds the onion listener's connection metrics (tor_support only),
// read from read once per scrape.
func (m *Metrics) RegisterOnionConnections(read func() OnionConnections) {
	m.reg.MustRegister(&onionCollector{read: read})
}

var onionDescs = struct{ accepted, full, serving, max *prometheus.Desc }{
	accepted: prometheus.NewDesc(namespace+"_api_onion_connections_accepted_total",
		"Onion clients' connections accepted from the kernel (tor's streams to the onion listener).", nil, nil),
	full: prometheus.NewDesc(namespace+"_api_onion_connections_full_total",
		"Times every place of the onion listener was taken: it stopped accepting until a connection closed (new onion clients, if any, waited in the kernel's queue).", nil, nil),
	serving: prometheus.NewDesc(namespace+"_api_onion_connections",
		"Onion clients' connections served now.", nil, nil),
	max: prometheus.NewDesc(namespace+"_api_onion_connections_max",
		"The most onion clients' connections served at once: their share of api_max_connections (0: no cap).", nil, nil),
}

type onionCollector struct{ read func() OnionConnections }

func (c *onionCollector) Describe(ch chan<- *prometheus.Desc) {
	d := onionDescs
	for _, x := range []*prometheus.Desc{d.accepted, d.full, d.serving, d.max} {
		ch <- x
	}
}

func (c *onionCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.read(), onionDescs
	ch <- prometheus.MustNewConstMetric(d.accepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(d.full, prometheus.CounterValue, float64(s.Full))
	ch <- prometheus.MustNewConstMetric(d.serving, prometheus.GaugeValue, float64(s.Serving))
	ch <- prometheus.MustNewConstMetric(d.max, prometheus.GaugeValue, float64(max(s.Max, 0)))
}

// BlocksFirstWaits are the waits at the blocks-first gate (blockfirst.WaitStats): requests
// that found a block being processed and stepped aside for it, at most the gate's bound.
type BlocksFirstWaits struct {
	Waits, AtBound uint64
	Seconds        float64 // their total wait
	// Buckets maps each histogram bucket's upper bound, in seconds, to the waits that lasted
	// at most that long (cumulative).
	Buckets map[float64]uint64
	// Waiting is how many requests are waiting now.
	Waiting uint64
}

// RegisterBlocksFirst adds the blocks-first gate's metrics, read from read once per scrape.
func (m *Metrics) RegisterBlocksFirst(read func() BlocksFirstWaits) {
	m.reg.MustRegister(&blocksFirstCollector{read: read})
}

var blocksFirstDescs = struct{ waits, atBound, seconds, waiting *prometheus.Desc }{
	waits: prometheus.NewDesc(namespace+"_blocks_first_waits_total",
		"Waits at the blocks-first gate: a request (an HTTP POST, or a signature or store step of the tower) found a block being processed and waited for it. One request may wait at several steps.", nil, nil),
	atBound: prometheus.NewDesc(namespace+"_blocks_first_waits_at_bound_total",
		"Blocks-first waits that reached the bound and went ahead while the block was still being processed.", nil, nil),
	seconds: prometheus.NewDesc(namespace+"_blocks_first_wait_seconds",
		"How long requests waited at the blocks-first gate (waits only).", nil, nil),
	waiting: prometheus.NewDesc(namespace+"_blocks_first_waiting",
		"Requests waiting at the blocks-first gate now (every front end's: HTTP, the tower's steps, lnd's messages).", nil, nil),
}

type blocksFirstCollector struct{ read func() BlocksFirstWaits }

func (c *blocksFirstCollector) Describe(ch chan<- *prometheus.Desc) {
	d := blocksFirstDescs
	ch <- d.waits
	ch <- d.atBound
	ch <- d.seconds
	ch <- d.waiting
}

func (c *blocksFirstCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.read(), blocksFirstDescs
	ch <- prometheus.MustNewConstMetric(d.waits, prometheus.CounterValue, float64(s.Waits))
	ch <- prometheus.MustNewConstMetric(d.atBound, prometheus.CounterValue, float64(s.AtBound))
	ch <- prometheus.MustNewConstHistogram(d.seconds, s.Waits, s.Seconds, s.Buckets)
	ch <- prometheus.MustNewConstMetric(d.waiting, prometheus.GaugeValue, float64(s.Waiting))
}
