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
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// stoppingBody is the whole answer to an add not served because the tower is stopping.
const stoppingBody = `{"error":"Service currently unavailable: the tower is stopping, send again later","error_code":7}`

// While the tower is stopping, an add the core does not serve is answered 503 with error_code 7,
// which the CLN plugin keeps pending on its first send and in its retrier (it files 503 / 32 or
// 400 / 255 as invalid for good, and on the first send loses one whose connection was cut). The
// other endpoints' connections are cut: nothing is lost by that. Answers of the core, and the
// same errors while the tower runs, are unchanged.
func TestStoppingAnswersAddsSendAgain(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "Service currently unavailable")
	bodies := map[string]string{
		"/add_appointment":       validBodies["/add_appointment"],
		"/add_appointments":      batchBody(validBodies["/add_appointment"], validBodies["/add_appointment"]),
		"/register":              validBodies["/register"],
		"/get_appointment":       validBodies["/get_appointment"],
		"/get_subscription_info": validBodies["/get_subscription_info"],
	}
	for _, tc := range []struct {
		name     string
		path     string
		err      error
		stopping bool
		status   int // 0: the connection is closed unanswered
		code     int
	}{
		{"add, unavailable, running", "/add_appointment", unavailable, false, http.StatusServiceUnavailable, 32},
		{"add, unavailable, stopping", "/add_appointment", unavailable, true, http.StatusServiceUnavailable, 7},
		// The hop's own client closed (teosd past its HTTP shutdown bound): grpc-go's Canceled.
		{"add, hop closed, running", "/add_appointment", grpc.ErrClientConnClosing, false, http.StatusBadRequest, 255},
		{"add, hop closed, stopping", "/add_appointment", grpc.ErrClientConnClosing, true, http.StatusServiceUnavailable, 7},
		{"add, an answer, stopping", "/add_appointment", status.Error(codes.Unauthenticated, "Invalid signature or user does not have enough slots available"), true, http.StatusUnauthorized, 7},
		{"add, internal error, stopping", "/add_appointment", status.Error(codes.Internal, "boom"), true, http.StatusBadRequest, 255},
		{"batch, unavailable, running", "/add_appointments", unavailable, false, http.StatusServiceUnavailable, 32},
		{"batch, unavailable, stopping", "/add_appointments", unavailable, true, http.StatusServiceUnavailable, 7},
		{"batch, hop closed, stopping", "/add_appointments", grpc.ErrClientConnClosing, true, http.StatusServiceUnavailable, 7},
		{"register, unavailable, running", "/register", unavailable, false, http.StatusServiceUnavailable, 32},
		{"register, unavailable, stopping", "/register", unavailable, true, 0, 0},
		{"get_appointment, unavailable, stopping", "/get_appointment", unavailable, true, 0, 0},
		{"get_subscription_info, hop closed, stopping", "/get_subscription_info", grpc.ErrClientConnClosing, true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			fake.err = tc.err
			ext := newExtFake()
			ext.err = tc.err
			seen := &exchanges{}
			srv := httptest.NewServer(httpapi.NewHandler(httpapi.Config{Client: fake, Ext: ext, Observer: seen,
				Stopping: func() bool { return tc.stopping }}))
			t.Cleanup(srv.Close)
			if tc.status != 0 {
				got := post(t, srv, tc.path, bodies[tc.path])
				if tc.stopping && tc.code == 7 && tc.status == http.StatusServiceUnavailable {
					if got.status != tc.status || got.body != stoppingBody {
						t.Fatalf("%d %s, want %d %s", got.status, got.body, tc.status, stoppingBody)
					}
				}
				checkError(t, got, tc.status, tc.code, "", true)
				if x := seen.last(t); x.Status != tc.status || x.ErrorCode != tc.code {
					t.Errorf("observed %+v, want status %d and error code %d", x, tc.status, tc.code)
				}
				return
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+tc.path, strings.NewReader(bodies[tc.path]))
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

// A streamed /add_appointments the core stops serving while the tower is stopping ends as
// /add_appointment would answer its unanswered items: with the stopping answer, as a 503 if no
// line was sent yet, else as the closing line.
func TestStoppingStreamAnswersSendAgain(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "Service currently unavailable")
	for _, tc := range []struct {
		name      string
		msgs      []*teosv2.AddAppointmentsStreamResponse
		wantCode  int
		wantLines []string // prefixes
	}{
		{"before any line", nil, http.StatusServiceUnavailable, []string{stoppingBody}},
		{"after a line", []*teosv2.AddAppointmentsStreamResponse{{First: 0, Results: []*teosv2.AddAppointmentResult{receiptFor(0, nil)}}},
			http.StatusOK, []string{`{"index":0,"locator":`, stoppingBody}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := &streamExt{msgs: tc.msgs, err: unavailable}
			h := httpapi.NewHandler(httpapi.Config{Client: newFake(), Ext: ext, Stopping: func() bool { return true }})
			req := httptest.NewRequest(http.MethodPost, "/add_appointments", strings.NewReader(streamBody(2)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/x-ndjson")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n"), "\n")
			if rec.Code != tc.wantCode || len(lines) != len(tc.wantLines) {
				t.Fatalf("%d:\n%s", rec.Code, rec.Body)
			}
			for i, want := range tc.wantLines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %s, want %s...", i, lines[i], want)
				}
			}
		})
	}
}
