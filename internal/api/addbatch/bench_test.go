//go:build unix

package addbatch

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// echoTower answers every add with a receipt at once: what is left is the hop's own cost.
type echoTower struct {
	teosv2.UnimplementedPublicTowerServicesServer
	teosv2.UnimplementedPublicTowerExtensionsServer
}

func echo(req *commonv2.AddAppointmentRequest) *commonv2.AddAppointmentResponse {
	return &commonv2.AddAppointmentResponse{Locator: req.GetAppointment().GetLocator(), StartBlock: 110,
		Signature: req.GetSignature(), AvailableSlots: 1000, SubscriptionExpiry: 5000}
}

func (echoTower) AddAppointment(_ context.Context, req *commonv2.AddAppointmentRequest) (*commonv2.AddAppointmentResponse, error) {
	return echo(req), nil
}

func (echoTower) AddAppointments(_ context.Context, req *teosv2.AddAppointmentsRequest) (*teosv2.AddAppointmentsResponse, error) {
	out := &teosv2.AddAppointmentsResponse{Results: make([]*teosv2.AddAppointmentResult, len(req.GetAppointments()))}
	for i, r := range req.GetAppointments() {
		out.Results[i] = &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Receipt{Receipt: echo(r)}}
	}
	return out, nil
}

// BenchmarkHopLone: one caller at a time, whose add must not wait longer coalesced (ns/op is
// its latency through the hop).
func BenchmarkHopLone(b *testing.B) {
	for _, coalesce := range []bool{false, true} {
		name := "unary"
		if coalesce {
			name = "coalesced"
		}
		b.Run(name, func(b *testing.B) {
			client, req := hopClient(b, coalesce, DefaultInFlight)
			for b.Loop() {
				if _, err := client.AddAppointment(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// hopClient serves echoTower on loopback TCP and returns a client of it, coalescing with
// inFlight calls or not, and an add_appointment-sized request.
func hopClient(b *testing.B, coalesce bool, inFlight int) (teosv2.PublicTowerServicesClient, *commonv2.AddAppointmentRequest) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	teosv2.RegisterPublicTowerServicesServer(srv, echoTower{})
	teosv2.RegisterPublicTowerExtensionsServer(srv, echoTower{})
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	var client teosv2.PublicTowerServicesClient = teosv2.NewPublicTowerServicesClient(conn)
	if coalesce {
		client = New(client, teosv2.NewPublicTowerExtensionsClient(conn), Config{MaxItems: 1000, InFlight: inFlight})
	}
	return client, &commonv2.AddAppointmentRequest{
		Appointment: &commonv2.Appointment{Locator: make([]byte, 16), EncryptedBlob: make([]byte, 500), ToSelfDelay: 42},
		Signature:   "d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5",
	}
}

// BenchmarkHop: the CPU per add of the internal gRPC hop alone (client and server in this
// process, loopback TCP, as in teosd), 64 callers, each add its own add_appointment call
// ("unary") or coalesced (InFlight calls at once).
func BenchmarkHop(b *testing.B) {
	for _, bc := range []struct {
		name     string
		inFlight int // 0: unary
	}{{"unary", 0}, {"coalesced-1", 1}, {"coalesced-2", 2}, {"coalesced-4", 4}} {
		b.Run(bc.name, func(b *testing.B) {
			client, req := hopClient(b, bc.inFlight > 0, bc.inFlight)
			co, _ := client.(*Client)
			b.SetParallelism(32) // 64 callers on 2 cores, as teos-bench's 64 clients
			cpu0 := cpuNow()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.AddAppointment(context.Background(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
			if co != nil {
				s := co.Sizes()
				b.ReportMetric(float64(s.Adds)/float64(s.Calls), "adds/call")
			}
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
