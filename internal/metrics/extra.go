package metrics

import "github.com/prometheus/client_golang/prometheus"

// Register adds collectors of other front ends (internal/frontend) to the tower's registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
