package metrics

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// fakeTower stands in for the store and the chain monitor.
type fakeTower struct {
	users, appointments, trackers int
	err                           error
	countCalls                    atomic.Int32
	height                        atomic.Uint32
	reachable                     atomic.Bool
}

func (f *fakeTower) counts() (int, int, int, error) {
	f.countCalls.Add(1)
	return f.users, f.appointments, f.trackers, f.err
}

func newTestMetrics(f *fakeTower) *Metrics {
	return New(Config{Counts: f.counts, Height: f.height.Load, Reachable: f.reachable.Load, Endpoints: []string{"register", "add_appointment", "ping", "other"}})
}

func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestGaugesReadAtScrapeTime(t *testing.T) {
	f := &fakeTower{users: 3, appointments: 5, trackers: 2}
	f.height.Store(120)
	f.reachable.Store(true)
	m := newTestMetrics(f)
	if n := f.countCalls.Load(); n != 0 {
		t.Fatalf("Counts called %d times before any scrape", n)
	}
	const want = `
# HELP teos_registered_users Users registered with the tower (expired ones stay until they are cleaned up).
# TYPE teos_registered_users gauge
teos_registered_users 3
# HELP teos_watcher_appointments Appointments the watcher is looking for in new blocks.
# TYPE teos_watcher_appointments gauge
teos_watcher_appointments 5
# HELP teos_responder_trackers Penalty transactions the responder is tracking.
# TYPE teos_responder_trackers gauge
teos_responder_trackers 2
# HELP teos_chain_height Height of the last block the tower processed.
# TYPE teos_chain_height gauge
teos_chain_height 120
# HELP teos_bitcoind_reachable 1 if the last call to bitcoind succeeded, 0 if not.
# TYPE teos_bitcoind_reachable gauge
teos_bitcoind_reachable 1
`
	names := []string{"teos_registered_users", "teos_watcher_appointments", "teos_responder_trackers", "teos_chain_height", "teos_bitcoind_reachable"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := f.countCalls.Load(); n != 1 {
		t.Fatalf("Counts called %d times for one scrape, want 1", n)
	}

	f.users, f.appointments, f.trackers = 4, 0, 7
	f.height.Store(121)
	f.reachable.Store(false)
	fams := families(t, m)
	for name, want := range map[string]float64{
		"teos_registered_users": 4, "teos_watcher_appointments": 0, "teos_responder_trackers": 7,
		"teos_chain_height": 121, "teos_bitcoind_reachable": 0,
	} {
		if got := fams[name].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestCountsErrorFailsOnlyItsGauges(t *testing.T) {
	f := &fakeTower{err: errors.New("database closed")}
	f.height.Store(7)
	m := newTestMetrics(f)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	if strings.Contains(body, "teos_registered_users") {
		t.Errorf("scrape shows teos_registered_users although Counts failed:\n%s", body)
	}
	if !strings.Contains(body, "teos_chain_height 7\n") {
		t.Errorf("scrape lacks teos_chain_height 7:\n%s", body)
	}
	// The handler counts a failed gathering after it answered, so the next scrape shows it.
	body = get(t, srv.URL+"/metrics", http.StatusOK)
	if !strings.Contains(body, `promhttp_metric_handler_errors_total{cause="gathering"} 1`) {
		t.Errorf("gathering error not counted:\n%s", body)
	}
}

func TestHandler(t *testing.T) {
	f := &fakeTower{users: 1}
	m := newTestMetrics(f)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{"teos_registered_users 1\n", "teos_blocks_processed_total 0\n", "go_goroutines ", "process_cpu_seconds_total ",
		`teos_http_request_duration_seconds_count{endpoint="add_appointment"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	get(t, srv.URL+"/", http.StatusNotFound)
	get(t, srv.URL+"/metrics/x", http.StatusNotFound)
}

func TestNamingConventions(t *testing.T) {
	f := &fakeTower{}
	m := newTestMetrics(f)
	m.ObserveBlock(time.Millisecond)
	m.ObserveHTTP(HTTPRequest{Endpoint: "ping", Status: 200, Held: time.Second})
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "teos_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestObserveBlock(t *testing.T) {
	m := New(Config{})
	m.ObserveBlock(3 * time.Millisecond)
	m.ObserveBlock(2 * time.Second)
	if got := testutil.ToFloat64(m.blocks); got != 2 {
		t.Fatalf("teos_blocks_processed_total = %v, want 2", got)
	}
	h := families(t, m)["teos_block_processing_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-2.003) > 1e-9 {
		t.Fatalf("histogram count %d sum %v, want 2 and 2.003", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 2:
			want = 2
		case b.GetUpperBound() >= 0.003:
			want = 1
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

func TestNilSourcesLeaveGaugesOut(t *testing.T) {
	fams := families(t, New(Config{}))
	for _, name := range []string{"teos_registered_users", "teos_chain_height", "teos_bitcoind_reachable"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s registered without a source", name)
		}
	}
	if _, ok := fams["teos_blocks_processed_total"]; !ok {
		t.Error("teos_blocks_processed_total missing")
	}
}

func get(t *testing.T, url string, wantStatus int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, wantStatus, b)
	}
	return string(b)
}
