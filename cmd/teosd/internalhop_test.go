package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

type echoTower struct {
	teosv2.UnimplementedPublicTowerServicesServer
}

func (echoTower) AddAppointment(_ context.Context, req *commonv2.AddAppointmentRequest) (*commonv2.AddAppointmentResponse, error) {
	return &commonv2.AddAppointmentResponse{Locator: req.GetAppointment().GetLocator(), StartBlock: 110,
		Signature: req.GetSignature(), AvailableSlots: 1000, SubscriptionExpiry: 5000}, nil
}

// TestInternalHopServes: by default the edge dials the TCP listener; with TEOSD_INTERNAL_HOP=pipe
// its gRPC client reaches the internal API through the in-process listener internalHop opens.
func TestInternalHopServes(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if lis, target, _ := internalHop(tcp); lis != nil || target != tcp.Addr().String() {
		t.Fatalf("default hop: %v %q, want the TCP listener", lis, target)
	}
	t.Setenv(hopEnv, "pipe")
	lis, target, opts := internalHop(tcp)
	if lis == nil {
		t.Fatal("no in-process listener")
	}
	srv := grpc.NewServer()
	teosv2.RegisterPublicTowerServicesServer(srv, echoTower{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := teosv2.NewPublicTowerServicesClient(conn).AddAppointment(context.Background(), &commonv2.AddAppointmentRequest{Signature: "sig"})
	if err != nil || resp.GetSignature() != "sig" {
		t.Fatalf("AddAppointment over %s: %v, %v", target, resp, err)
	}
}

// BenchmarkInternalHop: the CPU of one add_appointment-sized call through the internal gRPC hop
// (client and server in this process, as in teosd), over loopback TCP, an abstract Unix socket and
// teosd's in-process pipe (internalHop).
func BenchmarkInternalHop(b *testing.B) {
	for _, kind := range []string{"tcp", "unix", "pipe"} {
		b.Run(kind, func(b *testing.B) {
			tcp, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer tcp.Close()
			lis, target := tcp, tcp.Addr().String()
			opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
			switch kind {
			case "unix": // measured for comparison: an abstract Unix socket (Linux)
				unix, err := net.Listen("unix", "@teosd-hop-bench-"+strconv.Itoa(os.Getpid()))
				if err != nil {
					b.Skip(err)
				}
				lis, target = unix, "unix-abstract:teosd-hop-bench-"+strconv.Itoa(os.Getpid())
			case "pipe": // TEOSD_INTERNAL_HOP=pipe
				b.Setenv(hopEnv, "pipe")
				var hopOpts []grpc.DialOption
				lis, target, hopOpts = internalHop(tcp)
				opts = append(opts, hopOpts...)
			}
			srv := grpc.NewServer()
			teosv2.RegisterPublicTowerServicesServer(srv, echoTower{})
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			conn, err := grpc.NewClient(target, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := teosv2.NewPublicTowerServicesClient(conn)
			req := &commonv2.AddAppointmentRequest{
				Appointment: &commonv2.Appointment{Locator: make([]byte, 16), EncryptedBlob: make([]byte, 500), ToSelfDelay: 42},
				Signature:   "d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5",
			}
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
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
