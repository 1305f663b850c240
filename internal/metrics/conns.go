package metrics

import "github.com/prometheus/client_golang/prometheus"

// Connections are the public API listener's counts (limits.ListenerStats).
type Connections struct {
	Accepted, Reset, Parked, Promoted, Expired int64
	Serving, ParkedNow                         int
	Full                                       int64 // times every place was taken
}

// RegisterConnections adds the public API's connection metrics, read from read once per
// scrape.
func (m *Metrics) RegisterConnections(read func() Connections) {
	m.reg.MustRegister(&connCollector{read: read})
}

var (
	connDescs = struct {
		accepted, reset, parked, promoted, expired, serving, parkedNow, full *prometheus.Desc
	}{
		accepted: prometheus.NewDesc(namespace+"_api_connections_accepted_total",
			"Public API connections accepted from the kernel.", nil, nil),
		reset: prometheus.NewDesc(namespace+"_api_connections_reset_total",
			"Public API connections reset as they were accepted: past their address's cap, with no room to park them.", nil, nil),
		parked: prometheus.NewDesc(namespace+"_api_connections_parked_total",
			"Public API connections parked (kept waiting, unread) past their address's cap.", nil, nil),
		promoted: prometheus.NewDesc(namespace+"_api_connections_promoted_total",
			"Parked public API connections served once a place of their address freed.", nil, nil),
		expired: prometheus.NewDesc(namespace+"_api_connections_park_expired_total",
			"Parked public API connections reset after waiting the park timeout.", nil, nil),
		serving: prometheus.NewDesc(namespace+"_api_connections",
			"Public API connections served now.", nil, nil),
		parkedNow: prometheus.NewDesc(namespace+"_api_connections_parked",
			"Public API connections parked now.", nil, nil),
		full: prometheus.NewDesc(namespace+"_api_connections_full_total",
			"Times every place of the public API listener was taken (api_max_connections): it stopped accepting until a connection closed (new clients, if any, waited in the kernel's queue).", nil, nil),
	}
)

type connCollector struct{ read func() Connections }

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) {
	d := connDescs
	for _, x := range []*prometheus.Desc{d.accepted, d.reset, d.parked, d.promoted, d.expired, d.serving, d.parkedNow, d.full} {
		ch <- x
	}
}

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.read(), connDescs
	for _, m := range []struct {
		desc *prometheus.Desc
		t    prometheus.ValueType
		v    float64
	}{
		{d.accepted, prometheus.CounterValue, float64(s.Accepted)},
		{d.reset, prometheus.CounterValue, float64(s.Reset)},
		{d.parked, prometheus.CounterValue, float64(s.Parked)},
		{d.promoted, prometheus.CounterValue, float64(s.Promoted)},
		{d.expired, prometheus.CounterValue, float64(s.Expired)},
		{d.serving, prometheus.GaugeValue, float64(s.Serving)},
		{d.parkedNow, prometheus.GaugeValue, float64(s.ParkedNow)},
		{d.full, prometheus.CounterValue, float64(s.Full)},
	} {
		ch <- prometheus.MustNewConstMetric(m.desc, m.t, m.v)
	}
}
