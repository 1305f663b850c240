package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/httpapi"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// heldStream answers a first group, then a second one only after pause: the core held it
// (a fault of the tower's own, up to the hold bound).
type heldStream struct {
	teosv2.PublicTowerExtensionsClient
	pause time.Duration
}

func (h *heldStream) AddAppointmentsStream(context.Context, *teosv2.AddAppointmentsStreamRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[teosv2.AddAppointmentsStreamResponse], error) {
	return &pausingStream{pause: h.pause, msgs: []*teosv2.AddAppointmentsStreamResponse{
		{First: 0, Results: []*teosv2.AddAppointmentResult{receiptFor(0, nil)}},
		{First: 1, Results: []*teosv2.AddAppointmentResult{receiptFor(1, nil)}},
	}}, nil
}

type pausingStream struct {
	grpc.ClientStream
	pause time.Duration
	msgs  []*teosv2.AddAppointmentsStreamResponse
	sent  int
}

func (s *pausingStream) Recv() (*teosv2.AddAppointmentsStreamResponse, error) {
	if s.sent == len(s.msgs) {
		return nil, io.EOF
	}
	if s.sent > 0 {
		time.Sleep(s.pause)
	}
	s.sent++
	return s.msgs[s.sent-1], nil
}

// A group the core holds through a fault, up to the hold bound, does not end a streamed answer
// whose earlier lines were flushed: the write window after a flush allows for the hold. (It
// was the bare window, 30 s, below the default 45 s bound: the group was committed, its
// receipts never arrived.)
func TestStreamOutlivesAHeldGroup(t *testing.T) {
	defer httpapi.SetStreamWriteWindow(50 * time.Millisecond)()
	h := httpapi.NewHandler(httpapi.Config{Client: newFake(), Ext: &heldStream{pause: 300 * time.Millisecond}, HoldBound: 5 * time.Second})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/add_appointments", strings.NewReader(streamBody(2)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[1], `{"index":1,"locator":`) {
		t.Fatalf("stream cut: err %v, body:\n%s", err, body)
	}
}
