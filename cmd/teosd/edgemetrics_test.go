package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/metrics"
)

func scrape(t *testing.T, met *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(met.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The composition root feeds the metrics from the gate's and the onion listener's own
// counters: a wait at the gate and a request over the onion listener show up in the scrape.
func TestEdgeMetricsFromTheirOwners(t *testing.T) {
	cfg := config.Default()
	cfg.TorSupport = true
	o := &onionService{log: slog.New(slog.DiscardHandler)}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	if err := o.listen(&cfg, ok, defaultAPITimeouts); err != nil {
		t.Fatal(err)
	}
	go o.serveAPI()
	defer o.shutdownAPI(t.Context())
	g := blockfirst.New(time.Millisecond)
	met := metrics.New(metrics.Config{})
	registerEdgeMetrics(met, g, o)

	before := scrape(t, met)
	for _, line := range []string{"teos_blocks_first_waits_total 0", "teos_api_onion_connections_accepted_total 0"} {
		if !strings.Contains(before, line+"\n") {
			t.Errorf("before: no %q in the scrape", line)
		}
	}

	g.Begin() // a block that outlasts the bound: the wait goes ahead at it
	g.Wait()
	g.End()
	resp, err := http.Get("http://" + o.lis.Addr().String() + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	_, onionMax := splitConns(apiConnBudget(&cfg, fdLimit()), true)
	after := scrape(t, met)
	for _, line := range []string{
		"teos_blocks_first_waits_total 1",
		"teos_blocks_first_waits_at_bound_total 1",
		"teos_blocks_first_wait_seconds_count 1",
		`teos_blocks_first_wait_seconds_bucket{le="+Inf"} 1`,
		`teos_blocks_first_wait_seconds_bucket{le="0.001"} 0`, // it lasted at least the bound
		"teos_api_onion_connections_accepted_total 1",
		"teos_api_onion_connections_max " + strconv.Itoa(onionMax),
	} {
		if !strings.Contains(after, line+"\n") {
			t.Errorf("after: no %q in the scrape", line)
		}
	}
}

// Without tor_support there is no onion listener and no onion series; without metrics_bind
// nothing is registered.
func TestEdgeMetricsWithoutTor(t *testing.T) {
	met := metrics.New(metrics.Config{})
	registerEdgeMetrics(met, blockfirst.New(time.Second), nil)
	text := scrape(t, met)
	if strings.Contains(text, "teos_api_onion_") {
		t.Error("onion series without an onion listener")
	}
	if !strings.Contains(text, "teos_blocks_first_waits_total 0\n") {
		t.Error("no teos_blocks_first_waits_total")
	}
	registerEdgeMetrics(nil, blockfirst.New(time.Second), nil) // metrics off: a no-op
}
