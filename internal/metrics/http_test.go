package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// reply is what the fake API answers.
type reply struct {
	status      int // 0: write nothing
	contentType string
	body        string
}

func (rp reply) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if rp.contentType != "" {
		w.Header().Set("Content-Type", rp.contentType)
	}
	if rp.status != 0 {
		w.WriteHeader(rp.status)
	}
	if rp.body != "" {
		_, _ = io.WriteString(w, rp.body)
	}
}

func TestInstrumentLabels(t *testing.T) {
	const jsonType = "application/json"
	for _, tc := range []struct {
		name, method, path string
		reply              reply
		endpoint, code     string
		errorCode          string
	}{
		{"ok", http.MethodPost, "/add_appointment", reply{200, jsonType, `{"locator":"ab"}`}, "add_appointment", "200", ""},
		{"ok without WriteHeader", http.MethodPost, "/register", reply{0, jsonType, `{"user_id":"02"}`}, "register", "200", ""},
		{"ping writes nothing", http.MethodGet, "/ping", reply{}, "ping", "200", ""},
		{"validation error", http.MethodPost, "/register", reply{400, jsonType, `{"error":"missing field","error_code":1}`}, "register", "400", "1"},
		{"auth failure", http.MethodPost, "/get_subscription_info", reply{401, jsonType, `{"error":"Invalid signature or user does not have enough slots available","error_code":7}`}, "get_subscription_info", "401", "7"},
		{"internal error hides in 400", http.MethodPost, "/add_appointment", reply{400, "application/json; charset=utf-8", `{"error":"internal error","error_code":255}`}, "add_appointment", "400", "255"},
		{"not found", http.MethodPost, "/get_appointment", reply{404, jsonType, `{"error":"not found","error_code":36}`}, "get_appointment", "404", "36"},
		{"undefined code", http.MethodPost, "/register", reply{400, jsonType, `{"error":"?","error_code":999}`}, "register", "400", "other"},
		{"text rejection", http.MethodPost, "/register", reply{413, "text/plain; charset=utf-8", "The request payload is too large"}, "register", "413", ""},
		{"json without code", http.MethodPost, "/register", reply{400, jsonType, `{"error":"x"}`}, "register", "400", ""},
		{"code in a text body is ignored", http.MethodPost, "/register", reply{400, "text/plain", `{"error_code":1}`}, "register", "400", ""},
		{"subpath takes the route", http.MethodPost, "/register/extra", reply{200, jsonType, `{}`}, "register", "200", ""},
		{"unknown path", http.MethodGet, "/wp-login.php", reply{405, "text/plain", "HTTP method not allowed"}, "other", "405", ""},
		{"root", http.MethodGet, "/", reply{405, "text/plain", "HTTP method not allowed"}, "other", "405", ""},
		{"route name in a later segment", http.MethodPost, "/x/register", reply{405, "text/plain", "HTTP method not allowed"}, "other", "405", ""},
		{"escaped route name", http.MethodPost, "/reg%69ster", reply{405, "text/plain", "HTTP method not allowed"}, "other", "405", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			h := m.Instrument(tc.reply)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))

			// The client gets the reply untouched.
			wantStatus := tc.reply.status
			if wantStatus == 0 {
				wantStatus = http.StatusOK
			}
			if rec.Code != wantStatus || rec.Body.String() != tc.reply.body {
				t.Fatalf("client got %d %q, want %d %q", rec.Code, rec.Body.String(), wantStatus, tc.reply.body)
			}
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Fatalf("%d request series, want 1", n)
			}
			if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.endpoint, tc.code, tc.errorCode)); got != 1 {
				t.Fatalf("teos_http_requests_total{endpoint=%q,code=%q,error_code=%q} = %v, want 1", tc.endpoint, tc.code, tc.errorCode, got)
			}
			if n := sampleCount(t, m, tc.endpoint); n != 1 {
				t.Fatalf("latency samples for %s = %d, want 1", tc.endpoint, n)
			}
		})
	}
}

func TestInstrumentBoundsCardinality(t *testing.T) {
	m := New(Config{})
	h := m.Instrument(reply{405, "text/plain", "HTTP method not allowed"})
	for i := range 200 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, fmt.Sprintf("/probe%d/x", i), nil))
	}
	if n := testutil.CollectAndCount(m.requests); n != 1 {
		t.Fatalf("%d request series after 200 distinct paths, want 1", n)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("other", "405", "")); got != 200 {
		t.Fatalf("other/405 = %v, want 200", got)
	}
	// One latency series per known endpoint plus "other", whatever the traffic.
	if n := testutil.CollectAndCount(m.requestSeconds); n != len(endpoints) {
		t.Fatalf("%d latency series, want %d", n, len(endpoints))
	}
}

func TestInstrumentKeepsOnlyTheHeadOfLongErrors(t *testing.T) {
	m := New(Config{})
	long := `{"error_code":1,"error":"` + strings.Repeat("x", 10*maxErrorBody) + `"}`
	var seen *recorder
	h := m.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = w.(*recorder)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		for i := 0; i < len(long); i += 100 {
			_, _ = io.WriteString(w, long[i:min(i+100, len(long))])
		}
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/register", nil))
	if rec.Body.String() != long {
		t.Fatal("client did not get the whole body")
	}
	if len(seen.head) != maxErrorBody {
		t.Fatalf("kept %d bytes, want %d", len(seen.head), maxErrorBody)
	}
	// The truncated body is not valid JSON, so the code is unknown rather than wrong.
	if got := testutil.ToFloat64(m.requests.WithLabelValues("register", "400", "")); got != 1 {
		t.Fatalf("register/400 with no error_code = %v, want 1", got)
	}
}

func TestInstrumentExposesResponseController(t *testing.T) {
	m := New(Config{})
	h := m.Instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the middleware: %v", err)
		}
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ping", nil))
}

func sampleCount(t *testing.T, m *Metrics, endpoint string) uint64 {
	t.Helper()
	for _, metric := range families(t, m)["teos_http_request_duration_seconds"].GetMetric() {
		for _, l := range metric.GetLabel() {
			if l.GetName() == "endpoint" && l.GetValue() == endpoint {
				return metric.GetHistogram().GetSampleCount()
			}
		}
	}
	t.Fatalf("no latency series for %s", endpoint)
	return 0
}
