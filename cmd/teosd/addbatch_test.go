package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/addbatch"
	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/metrics"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// recordingConn is a gRPC connection that reports each call's method on calls and answers
// once a token arrives on release.
type recordingConn struct {
	calls   chan string
	release chan struct{}
}

func (c *recordingConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	c.calls <- method
	select {
	case <-c.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch r := reply.(type) {
	case *commonv2.AddAppointmentResponse:
		r.Locator = args.(*commonv2.AddAppointmentRequest).GetAppointment().GetLocator()
	case *teosv2.AddAppointmentsResponse:
		for _, a := range args.(*teosv2.AddAppointmentsRequest).GetAppointments() {
			r.Results = append(r.Results, &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Receipt{
				Receipt: &commonv2.AddAppointmentResponse{Locator: a.GetAppointment().GetLocator()}}})
		}
	}
	return nil
}

func (*recordingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("no streams")
}

func testHold() grpcapi.Hold {
	return grpcapi.Hold{Gate: hold.New(hold.Config{Bound: time.Minute}), Bitcoind: hold.NewCondition("bitcoind", 0),
		Store: hold.NewCondition("store", time.Millisecond)}
}

func edgeAdd(client teosv2.PublicTowerServicesClient, loc string) {
	go func() {
		_, _ = client.AddAppointment(context.Background(), &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: []byte(loc)}})
	}()
}

// The edge coalesces adds; once a hold condition goes down, the queue is sent at once
// (not behind calls that may be held) and new adds go alone, each held on its own.
func TestEdgeClientHold(t *testing.T) {
	conn := &recordingConn{calls: make(chan string, 16), release: make(chan struct{})}
	held := testHold()
	met := metrics.New(metrics.Config{})
	client := edgeClient(conn, held, met, nil)
	co, ok := client.(*addbatch.Client)
	if !ok {
		t.Fatalf("edge client %T, want the coalescer", client)
	}
	for range addbatch.DefaultInFlight { // every call slot taken
		edgeAdd(client, "busy")
		if m := <-conn.calls; m != teosv2.PublicTowerServices_AddAppointment_FullMethodName {
			t.Fatalf("lone add sent as %s", m)
		}
	}
	edgeAdd(client, "a")
	edgeAdd(client, "b")
	for co.Queued() != 2 {
		time.Sleep(time.Millisecond)
	}
	held.Store.Down(errors.New("disk full"))
	if m := <-conn.calls; m != teosv2.PublicTowerExtensions_AddAppointments_FullMethodName {
		t.Fatalf("queue flushed as %s, want add_appointments", m)
	}
	edgeAdd(client, "during the fault")
	if m := <-conn.calls; m != teosv2.PublicTowerServices_AddAppointment_FullMethodName {
		t.Fatalf("add during the fault sent as %s, want alone", m)
	}
	close(conn.release)
	for co.Sizes().Adds != 5 {
		time.Sleep(time.Millisecond)
	}
	if text := scrape(t, met); !strings.Contains(text, "teos_api_add_batch_size_sum 5\n") ||
		!strings.Contains(text, "teos_api_add_batch_size_count 4\n") {
		t.Errorf("no teos_api_add_batch_size of 5 adds in 4 calls in the scrape:\n%s", text)
	}
}

// TEOSD_ADD_COALESCE=off: every add is its own call, as before the coalescer.
func TestEdgeClientOff(t *testing.T) {
	t.Setenv(coalesceEnv, "off")
	if _, ok := edgeClient(&recordingConn{}, testHold(), nil, nil).(*addbatch.Client); ok {
		t.Error("coalescing with TEOSD_ADD_COALESCE=off")
	}
}
