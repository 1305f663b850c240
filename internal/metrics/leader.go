package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterLeader adds teos_leader: 1 while this instance leads the instances sharing a
// PostgreSQL database (it follows the chain), 0 while it follows. Only such towers have it.
func (m *Metrics) RegisterLeader(leading func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "leader",
		Help:      "1 if this instance leads the instances sharing the database (follows the chain), else 0.",
	}, func() float64 {
		if leading() {
			return 1
		}
		return 0
	}))
}
