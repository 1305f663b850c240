package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/httpapi"
)

// A request the core answers Unavailable while the tower is stopping gets no answer: its
// connection is closed, which the CLN plugin's retrier keeps pending, where it files 503 / 32
// as invalid for good. Other answers, and Unavailable while the tower runs, are unchanged.
func TestStoppingCutsUnavailable(t *testing.T) {
	fake := newFake()
	var stopping atomic.Bool
	seen := &exchanges{}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: fake, Observer: seen, Stopping: stopping.Load}))
	t.Cleanup(srv.Close)
	postErr := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/add_appointment", strings.NewReader(validBodies["/add_appointment"]))
		req.Header.Set("Content-Type", "application/json")
		return srv.Client().Do(req)
	}

	fake.err = status.Error(codes.Unavailable, "Service currently unavailable")
	checkError(t, post(t, srv, "/add_appointment", validBodies["/add_appointment"]), http.StatusServiceUnavailable, 32, "Service currently unavailable", false)

	stopping.Store(true)
	resp, err := postErr()
	if err == nil {
		resp.Body.Close()
		t.Fatalf("stopping: answered %d, want the connection closed", resp.StatusCode)
	}
	if x := seen.last(t); x.Status != httpapi.StatusNoResponse || x.ErrorCode != 0 {
		t.Errorf("observed %+v, want status %d and no error code", x, httpapi.StatusNoResponse)
	}

	fake.err = status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available")
	checkError(t, post(t, srv, "/add_appointment", validBodies["/add_appointment"]), http.StatusUnauthorized, 7, "", true)
}
