package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/httpapi"
)

// A request the core does not serve while the tower is stopping gets no answer: its connection
// is closed, which the CLN plugin's retrier keeps pending, where it files 503 / 32 (or 400 / 255)
// as invalid for good. Answers of the core, and the same errors while the tower runs, are
// unchanged.
func TestStoppingCutsUnavailable(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "Service currently unavailable")
	for _, tc := range []struct {
		name     string
		err      error
		stopping bool
		status   int // 0: the connection is closed unanswered
		code     int
	}{
		{"unavailable, running", unavailable, false, http.StatusServiceUnavailable, 32},
		{"unavailable, stopping", unavailable, true, 0, 0},
		// The hop's own client closed (teosd past its HTTP shutdown bound): grpc-go's Canceled.
		{"hop closed, running", grpc.ErrClientConnClosing, false, http.StatusBadRequest, 255},
		{"hop closed, stopping", grpc.ErrClientConnClosing, true, 0, 0},
		{"an answer, stopping", status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available"), true, http.StatusUnauthorized, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			fake.err = tc.err
			seen := &exchanges{}
			srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: fake, Observer: seen,
				Stopping: func() bool { return tc.stopping }}))
			t.Cleanup(srv.Close)
			if tc.status != 0 {
				checkError(t, post(t, srv, "/add_appointment", validBodies["/add_appointment"]), tc.status, tc.code, "", true)
				return
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/add_appointment", strings.NewReader(validBodies["/add_appointment"]))
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("answered %d, want the connection closed", resp.StatusCode)
			}
			if x := seen.last(t); x.Status != httpapi.StatusNoResponse || x.ErrorCode != 0 {
				t.Errorf("observed %+v, want status %d and no error code", x, httpapi.StatusNoResponse)
			}
		})
	}
}
