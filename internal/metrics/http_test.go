package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveHTTPLabels(t *testing.T) {
	for _, tc := range []struct {
		name           string
		req            HTTPRequest
		endpoint, code string
		errorCode      string
	}{
		{"ok", HTTPRequest{Endpoint: "add_appointment", Status: 200}, "add_appointment", "200", ""},
		{"validation error", HTTPRequest{Endpoint: "register", Status: 400, ErrorCode: 1}, "register", "400", "1"},
		{"internal error hides in 400", HTTPRequest{Endpoint: "add_appointment", Status: 400, ErrorCode: 255}, "add_appointment", "400", "255"},
		{"rate limit bound", HTTPRequest{Endpoint: "add_appointment", Status: 503, ErrorCode: 32}, "add_appointment", "503", "32"},
		{"text rejection", HTTPRequest{Endpoint: "register", Status: 413}, "register", "413", ""},
		{"unknown path", HTTPRequest{Endpoint: "other", Status: 405}, "other", "405", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			tc.req.Duration = time.Millisecond
			m.ObserveHTTP(tc.req)
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Fatalf("%d request series, want 1", n)
			}
			if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.endpoint, tc.code, tc.errorCode)); got != 1 {
				t.Fatalf("teos_http_requests_total{endpoint=%q,code=%q,error_code=%q} = %v, want 1", tc.endpoint, tc.code, tc.errorCode, got)
			}
			if n := sampleCount(t, m, "teos_http_request_duration_seconds", tc.endpoint); n != 1 {
				t.Fatalf("latency samples for %s = %d, want 1", tc.endpoint, n)
			}
		})
	}
}

func TestObserveHTTPHeld(t *testing.T) {
	m := New(Config{Endpoints: []string{"register", "add_appointment", "other"}})
	if n := testutil.CollectAndCount(m.requestSeconds); n != 3 {
		t.Fatalf("%d latency series before any request, want one per endpoint (3)", n)
	}
	m.ObserveHTTP(HTTPRequest{Endpoint: "add_appointment", Status: 200})
	if n := testutil.CollectAndCount(m.heldSeconds); n != 0 {
		t.Fatalf("a request that did not wait made %d held series", n)
	}
	m.ObserveHTTP(HTTPRequest{Endpoint: "add_appointment", Status: 200, Held: 2 * time.Second})
	if n := sampleCount(t, m, "teos_http_request_held_seconds", "add_appointment"); n != 1 {
		t.Fatalf("held samples = %d, want 1", n)
	}
}

func sampleCount(t *testing.T, m *Metrics, family, endpoint string) uint64 {
	t.Helper()
	for _, metric := range families(t, m)[family].GetMetric() {
		for _, l := range metric.GetLabel() {
			if l.GetName() == "endpoint" && l.GetValue() == endpoint {
				return metric.GetHistogram().GetSampleCount()
			}
		}
	}
	t.Fatalf("no %s series for %s", family, endpoint)
	return 0
}
