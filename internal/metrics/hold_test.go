package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveHoldAndGauges(t *testing.T) {
	held, failures := 3, uint64(2)
	m := New(Config{Held: func() int { return held }, AuthFailures: func() uint64 { return failures }})
	m.ObserveHold("store", 1500*time.Millisecond, "served")
	m.ObserveHold("store", 500*time.Millisecond, "served")
	m.ObserveHold("bitcoind", 45*time.Second, "timeout")
	if got := testutil.ToFloat64(m.hold.held.WithLabelValues("store", "served")); got != 2 {
		t.Fatalf("store/served = %v, want 2", got)
	}
	fams := families(t, m)
	var sum float64
	var count uint64
	for _, mt := range fams["teos_api_hold_seconds"].GetMetric() {
		sum += mt.GetHistogram().GetSampleSum()
		count += mt.GetHistogram().GetSampleCount()
	}
	if count != 3 || sum != 47 {
		t.Fatalf("hold seconds count %d sum %v, want 3 and 47", count, sum)
	}
	if g := fams["teos_api_held_requests"].GetMetric()[0].GetGauge().GetValue(); g != 3 {
		t.Fatalf("teos_api_held_requests = %v", g)
	}
	if c := fams["teos_bitcoind_auth_failures_total"].GetMetric()[0].GetCounter().GetValue(); c != 2 {
		t.Fatalf("teos_bitcoind_auth_failures_total = %v", c)
	}
}
