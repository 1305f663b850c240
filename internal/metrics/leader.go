package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterLeader adds teos_leader: 1 while this instance leads the instances sharing a
// PostgreSQL database (it follows the chain), 0 while it follows. Only such towers have it.
func (m *Metrics) RegisterLeader(leading func() bool) {
	m.reg.MustRegister(newBoolGauge("leader",
		"1 if this instance leads the instances sharing the database (follows the chain), else 0.", leading))
}

// RegisterDatabase adds teos_database_reachable: 1 while the shared database answered the
// leader election's last round trip (at most one polling period ago), else 0. Only towers on
// a shared PostgreSQL database have it.
func (m *Metrics) RegisterDatabase(reachable func() bool) {
	m.reg.MustRegister(newBoolGauge("database_reachable",
		"1 if the database answered the leader election's last round trip, else 0 (database_url only).", reachable))
}

// newBoolGauge is the gauge teos_<name>: 1 while value says true, else 0.
func newBoolGauge(name, help string, value func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, func() float64 {
		if value() {
			return 1
		}
		return 0
	})
}
