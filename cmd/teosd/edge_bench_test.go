package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/metrics"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/config"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// BenchmarkPublicEdgeAdd is the HTTP edge of one add_appointment as teosd wires it (publicEdge,
// newHTTPServer, blocksFirstHandler, the connection-capping listener) over loopback keep-alive
// connections from 64 clients, with the internal gRPC hop to a tower that echoes the request
// (no crypto, no store). CPU per op includes the in-process HTTP clients.
func BenchmarkPublicEdgeAdd(b *testing.B) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	teosv2.RegisterPublicTowerServicesServer(srv, echoTower{})
	teosv2.RegisterPublicTowerExtensionsServer(srv, echoBatchTower{}) // the edge coalesces concurrent adds
	go func() { _ = srv.Serve(tcp) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(tcp.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	cfg := config.Default()
	cfg.APIMaxConnectionsPerAddress = 0
	log := slog.New(slog.DiscardHandler)
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	api, apiLis, err := publicEdge(&cfg, log, conn, grpcapi.Hold{}, nil, httpLis, nil, registrationBudget(&cfg))
	if err != nil {
		b.Fatal(err)
	}
	httpSrv := newHTTPServer(blocksFirstHandler(api, blockfirst.New(blockFirstBound)), apiTimeoutsFor(0))
	watchIdle(httpSrv, apiLis)
	go func() { _ = httpSrv.Serve(apiLis) }()
	defer httpSrv.Close()

	const clients = 64
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients,
		DisableCompression: true}}
	defer client.CloseIdleConnections()
	url := "http://" + httpLis.Addr().String() + "/add_appointment"
	body := []byte(fmt.Sprintf(`{"appointment":{"locator":"%032x","encrypted_blob":"%s","to_self_delay":42},"signature":"%s"}`,
		7, bytes.Repeat([]byte("ab"), 500),
		"d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5"))

	b.SetParallelism(clients / 2)
	b.ReportAllocs()
	cpu0, gc0 := cpuNow(), gcCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			out, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("status %d %s %v", resp.StatusCode, out, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuNow()-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	b.ReportMetric((gcCPU()-gc0)/float64(b.N)*1e6, "gc-cpu-µs/op")
}

// gcCPU is the runtime's estimate of the CPU seconds its garbage collector has used (marking,
// assists, pauses).
func gcCPU() float64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Float64()
}

// echoBatchTower answers add_appointments item by item as echoTower answers add_appointment.
type echoBatchTower struct {
	teosv2.UnimplementedPublicTowerExtensionsServer
}

func (echoBatchTower) AddAppointments(ctx context.Context, req *teosv2.AddAppointmentsRequest) (*teosv2.AddAppointmentsResponse, error) {
	resp := &teosv2.AddAppointmentsResponse{}
	for _, r := range req.GetAppointments() {
		receipt, _ := echoTower{}.AddAppointment(ctx, r)
		resp.Results = append(resp.Results, &teosv2.AddAppointmentResult{Result: &teosv2.AddAppointmentResult_Receipt{Receipt: receipt}})
	}
	return resp, nil
}
