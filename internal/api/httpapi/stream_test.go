package httpapi_test

import (
	"context"
	"io"
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

// streamExt answers add_appointments_stream with msgs, then err (io.EOF for a clean end).
type streamExt struct {
	teosv2.PublicTowerExtensionsClient
	msgs []*teosv2.AddAppointmentsStreamResponse
	err  error
}

func (s *streamExt) AddAppointmentsStream(context.Context, *teosv2.AddAppointmentsStreamRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[teosv2.AddAppointmentsStreamResponse], error) {
	return &scriptedStream{msgs: s.msgs, err: s.err}, nil
}

type scriptedStream struct {
	grpc.ClientStream
	msgs []*teosv2.AddAppointmentsStreamResponse
	err  error
}

func (s *scriptedStream) Recv() (*teosv2.AddAppointmentsStreamResponse, error) {
	if len(s.msgs) == 0 {
		return nil, s.err
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func streamBody(n int) string {
	item := `{"appointment":{"locator":"` + locator + `","encrypted_blob":"00","to_self_delay":1},"signature":"` + sig + `"}`
	return `{"appointments":[` + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + `]}`
}

func postStream(t *testing.T, ext teosv2.PublicTowerExtensionsClient, body string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/add_appointments", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/x-ndjson")
	rec := httptest.NewRecorder()
	httpapi.NewWithExtensions(newFake(), ext, nil).ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
}

func TestStreamEndsWithErrorLine(t *testing.T) {
	first := receiptFor(0, nil)
	ext := &streamExt{
		msgs: []*teosv2.AddAppointmentsStreamResponse{{First: 0, Results: []*teosv2.AddAppointmentResult{first}}},
		err:  status.Error(codes.Unavailable, "Service currently unavailable"),
	}
	code, ct, body := postStream(t, ext, streamBody(3))
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if code != http.StatusOK || ct != "application/x-ndjson" || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], `{"index":0,"locator":`) ||
		lines[1] != `{"error":"Service currently unavailable","error_code":32}` {
		t.Fatalf("%d %s:\n%s", code, ct, body)
	}
}

func TestStreamErrorBeforeAnyLine(t *testing.T) {
	ext := &streamExt{err: status.Error(codes.Unavailable, "Service currently unavailable")}
	code, _, body := postStream(t, ext, streamBody(2))
	if code != http.StatusServiceUnavailable || body != `{"error":"Service currently unavailable","error_code":32}` {
		t.Fatalf("%d %s", code, body)
	}
	// Results past the request are the tower's bug: an error line, not a panic.
	ext = &streamExt{msgs: []*teosv2.AddAppointmentsStreamResponse{{First: 5, Results: []*teosv2.AddAppointmentResult{receiptFor(0, nil)}}}, err: io.EOF}
	code, _, body = postStream(t, ext, streamBody(2))
	if code != http.StatusBadRequest || !strings.Contains(body, `"error_code":255`) {
		t.Fatalf("%d %s", code, body)
	}
}
