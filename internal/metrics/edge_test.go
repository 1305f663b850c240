package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOnionConnectionsReadAtScrapeTime(t *testing.T) {
	m := New(Config{})
	s := OnionConnections{Accepted: 7, Full: 2, Serving: 3, Max: 256}
	m.RegisterOnionConnections(func() OnionConnections { return s })
	s.Accepted, s.Serving = 9, 1 // read at scrape, not at registration
	fams := families(t, m)
	for name, want := range map[string]float64{
		"teos_api_onion_connections_accepted_total": 9,
		"teos_api_onion_connections_full_total":     2,
	} {
		if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]float64{"teos_api_onion_connections": 1, "teos_api_onion_connections_max": 256} {
		if got := fams[name].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The public listener's series are not the onion one's.
	if _, ok := fams["teos_api_connections"]; ok {
		t.Error("teos_api_connections exported by the onion collector")
	}
	if problems, err := testutil.CollectAndLint(&onionCollector{read: func() OnionConnections { return s }}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestBlocksFirstReadAtScrapeTime(t *testing.T) {
	m := New(Config{})
	s := BlocksFirstWaits{Waits: 3, AtBound: 1, Seconds: 1.012, Buckets: map[float64]uint64{.001: 1, .01: 2, 1: 2, 2.5: 3}}
	m.RegisterBlocksFirst(func() BlocksFirstWaits { return s })
	s.Waits, s.Buckets[2.5], s.Waiting = 4, 4, 2 // read at scrape, not at registration
	fams := families(t, m)
	if got := fams["teos_blocks_first_waiting"].GetMetric()[0].GetGauge().GetValue(); got != 2 {
		t.Errorf("teos_blocks_first_waiting = %v, want 2", got)
	}
	for name, want := range map[string]float64{
		"teos_blocks_first_waits_total":          4,
		"teos_blocks_first_waits_at_bound_total": 1,
	} {
		if got := fams[name].GetMetric()[0].GetCounter().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	h := fams["teos_blocks_first_wait_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 4 || h.GetSampleSum() != 1.012 {
		t.Errorf("histogram count %d sum %v, want 4 and 1.012", h.GetSampleCount(), h.GetSampleSum())
	}
	got := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		got[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if len(got) != 4 || got[.001] != 1 || got[.01] != 2 || got[1] != 2 || got[2.5] != 4 {
		t.Errorf("buckets %v", got)
	}
	// The text exposition an operator's Prometheus reads.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	text := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, line := range []string{
		`teos_blocks_first_wait_seconds_bucket{le="0.001"} 1`,
		`teos_blocks_first_wait_seconds_bucket{le="+Inf"} 4`,
		`teos_blocks_first_wait_seconds_count 4`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("no %q in the scrape", line)
		}
	}
	if problems, err := testutil.CollectAndLint(&blocksFirstCollector{read: func() BlocksFirstWaits { return s }}); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
