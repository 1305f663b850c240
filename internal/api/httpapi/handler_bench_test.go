package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// fixedTower answers every add with the same receipt and records nothing.
type fixedTower struct {
	teosv2.PublicTowerServicesClient
	resp *commonv2.AddAppointmentResponse
}

func (f fixedTower) AddAppointment(context.Context, *commonv2.AddAppointmentRequest, ...grpc.CallOption) (*commonv2.AddAppointmentResponse, error) {
	return f.resp, nil
}

// discardWriter is a ResponseWriter whose header map is reused, so the benchmark counts the
// handler's allocations, not the writer's.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}

// BenchmarkHandlerAddAppointment is the public handler's own work for one add_appointment
// (routing, body read, inspection, request building, receipt), with the gRPC client answering
// at once and no network: what the handler costs per add on top of net/http and the hop.
func BenchmarkHandlerAddAppointment(b *testing.B) {
	sig := "d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5"
	body := []byte(fmt.Sprintf(`{"appointment":{"locator":"%032x","encrypted_blob":"%s","to_self_delay":42},"signature":"%s"}`,
		7, bytes.Repeat([]byte("ab"), 500), sig))
	h := httpapi.NewHandler(httpapi.Config{Client: fixedTower{resp: &commonv2.AddAppointmentResponse{
		Locator: make([]byte, 16), StartBlock: 110, Signature: sig, AvailableSlots: 1000, SubscriptionExpiry: 5000}}})
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/add_appointment", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Length", fmt.Sprint(len(body)))
	src := bytes.NewReader(body)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		src.Reset(body)
		req.Body = io.NopCloser(src)
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time this process has used: on a shared machine it moves less than
// the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
