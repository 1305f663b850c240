package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics scrapes teosd's Prometheus endpoint before and after a scripted run and checks
// that every counter moved by exactly what the run did, and that the gauges match the tower.
func TestMetrics(t *testing.T) {
	node := startNode(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + metricsAddr + "/metrics"
	tw := newTower(t, node, fmt.Sprintf("metrics_bind = %q\n", metricsAddr))
	tw.start()

	before := scrapeMetrics(t, metricsURL)
	for series, want := range map[string]float64{
		"teos_registered_users":     0,
		"teos_watcher_appointments": 0,
		"teos_responder_trackers":   0,
		"teos_chain_height":         110,
		"teos_bitcoind_reachable":   1,
	} {
		if got := before.value(t, series); got != want {
			t.Errorf("before: %s = %v, want %v", series, got, want)
		}
	}

	const users, appointments, blocks = 3, 4, 5
	var registered []*user
	for range users {
		u := newUser(t)
		u.register(t, tw)
		registered = append(registered, u)
	}
	for i := range appointments {
		registered[i%users].add(t, tw, randomAppointment(t, 100))
	}
	stranger := newUser(t) // never registered: 401, error_code 7
	if code, raw := post(t, tw.apiURL, "/add_appointment", stranger.addRequest(randomAppointment(t, 100)), nil); code != http.StatusUnauthorized {
		t.Fatalf("unregistered add_appointment: %d %s, want 401", code, raw)
	}
	resp, err := http.Get(tw.apiURL + "/no_such_route/42") // counted as endpoint "other"
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /no_such_route/42: %d, want 405", resp.StatusCode)
	}
	node.Generate(t, blocks)
	var after metricSamples
	// The height moves before the block is counted (chain.Monitor.connect): a scrape between
	// the two sees the last block processed but not yet counted.
	waitFor(t, "teos_chain_height 115 and the 5 blocks counted", func() bool {
		after = scrapeMetrics(t, metricsURL)
		return after.value(t, "teos_chain_height") == 110+blocks &&
			after.value(t, "teos_blocks_processed_total")-before.lookup("teos_blocks_processed_total") >= blocks &&
			after.value(t, "teos_block_processing_seconds_count")-before.lookup("teos_block_processing_seconds_count") >= blocks
	})

	for series, want := range map[string]float64{
		`teos_http_requests_total{code="200",endpoint="register"}`:                       users,
		`teos_http_requests_total{code="200",endpoint="add_appointment"}`:                appointments,
		`teos_http_requests_total{code="401",endpoint="add_appointment",error_code="7"}`: 1,
		`teos_http_requests_total{code="405",endpoint="other"}`:                          1,
		`teos_http_requests_total{code="200",endpoint="ping"}`:                           0,
		`teos_http_request_duration_seconds_count{endpoint="register"}`:                  users,
		`teos_http_request_duration_seconds_count{endpoint="add_appointment"}`:           appointments + 1,
		`teos_http_request_duration_seconds_count{endpoint="get_appointment"}`:           0,
		"teos_blocks_processed_total":                                                    blocks,
		"teos_block_processing_seconds_count":                                            blocks,
	} {
		if got := after.value(t, series) - before.lookup(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	// Every add that reached the internal API went in a call; sent one after the other, alone.
	for _, series := range []string{"teos_api_add_batch_size_sum", "teos_api_add_batch_size_count"} {
		if got := after.value(t, series) - before.lookup(series); got != appointments+1 {
			t.Errorf("%s moved by %v, want %d", series, got, appointments+1)
		}
	}
	// Nothing else reached the API: the per-series deltas above add up to every request.
	if got := after.sum("teos_http_requests_total") - before.sum("teos_http_requests_total"); got != users+appointments+2 {
		t.Errorf("teos_http_requests_total moved by %v in all, want %d", got, users+appointments+2)
	}
	for series, want := range map[string]float64{
		"teos_registered_users":     users,
		"teos_watcher_appointments": appointments,
		"teos_responder_trackers":   0,
		"teos_bitcoind_reachable":   1,
	} {
		if got := after.value(t, series); got != want {
			t.Errorf("after: %s = %v, want %v", series, got, want)
		}
	}
	// The blocks-first gate's waits: one snapshot, so the histogram counts every wait.
	if w, b, c := after.value(t, "teos_blocks_first_waits_total"), after.value(t, "teos_blocks_first_waits_at_bound_total"),
		after.value(t, "teos_blocks_first_wait_seconds_count"); b > w || c != w {
		t.Errorf("blocks-first: %v waits, %v at the bound, histogram count %v", w, b, c)
	}
	after.value(t, "teos_api_connections_full_total")
	for series := range after { // no tor_support: no onion listener
		if strings.HasPrefix(series, "teos_api_onion_") {
			t.Errorf("%s without tor_support", series)
		}
	}
	for _, series := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if after.value(t, series) <= 0 {
			t.Errorf("%s = %v, want > 0", series, after.lookup(series))
		}
	}

	// The endpoint keeps answering while bitcoind is gone, and says so.
	node.Stop(t)
	waitFor(t, "teos_bitcoind_reachable 0", func() bool {
		return scrapeMetrics(t, metricsURL).value(t, "teos_bitcoind_reachable") == 0
	})
	tw.stop()
}

// metricSamples maps a series, written name{label="value",...} with labels sorted by name and
// empty ones left out, to its value. Histograms give their _count and _sum.
type metricSamples map[string]float64

func scrapeMetrics(t testing.TB, url string) metricSamples {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	out := metricSamples{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetValue() != "" {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
			}
			sort.Strings(labels)
			suffix := ""
			if len(labels) > 0 {
				suffix = "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetHistogram() != nil:
				out[name+"_count"+suffix] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+suffix] = m.GetHistogram().GetSampleSum()
			case m.GetCounter() != nil:
				out[name+suffix] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name+suffix] = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				out[name+suffix] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// value is the series' value; a missing series fails the test.
func (s metricSamples) value(t testing.TB, series string) float64 {
	t.Helper()
	v, ok := s[series]
	if !ok {
		t.Fatalf("scrape has no %s", series)
	}
	return v
}

// lookup is the series' value, 0 when absent (a labelled counter appears on first use).
func (s metricSamples) lookup(series string) float64 { return s[series] }

// sum adds every series of a labelled metric.
func (s metricSamples) sum(name string) float64 {
	total := 0.0
	for series, v := range s {
		if strings.HasPrefix(series, name+"{") {
			total += v
		}
	}
	return total
}
