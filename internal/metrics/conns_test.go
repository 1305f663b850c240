package metrics

import "testing"

func TestConnectionsReadAtScrapeTime(t *testing.T) {
	m := New(Config{})
	s := Connections{Accepted: 10, Reset: 1, Parked: 5, Promoted: 2, Expired: 1, Serving: 4, ParkedNow: 2, Full: 3}
	m.RegisterConnections(func() Connections { return s })
	s.Accepted = 11 // read at scrape, not at registration
	fams := families(t, m)
	for name, want := range map[string]float64{
		"teos_api_connections_accepted_total":     11,
		"teos_api_connections_reset_total":        1,
		"teos_api_connections_parked_total":       5,
		"teos_api_connections_promoted_total":     2,
		"teos_api_connections_park_expired_total": 1,
		"teos_api_connections_full_total":         3,
	} {
		if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{"teos_api_connections": 4, "teos_api_connections_parked": 2} {
		if got := fams[name].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}
