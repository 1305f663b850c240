package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/teos-go/teos/internal/api/httpapi"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// fakeTower is a PublicTowerServicesClient that records every call and answers with
// the scripted response, or err when it is set.
type fakeTower struct {
	mu    sync.Mutex
	calls []call

	register            *commonv2.RegisterResponse
	addAppointment      *commonv2.AddAppointmentResponse
	getAppointment      *commonv2.GetAppointmentResponse
	getSubscriptionInfo *commonv2.GetSubscriptionInfoResponse
	err                 error
}

type call struct {
	method string
	req    proto.Message
	ctx    context.Context
}

var _ teosv2.PublicTowerServicesClient = (*fakeTower)(nil)

func (f *fakeTower) record(ctx context.Context, method string, req proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method: method, req: req, ctx: ctx})
}

func (f *fakeTower) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func answer[T any](f *fakeTower, resp T) (T, error) {
	if f.err != nil {
		var zero T
		return zero, f.err
	}
	return resp, nil
}

func (f *fakeTower) Register(ctx context.Context, in *commonv2.RegisterRequest, _ ...grpc.CallOption) (*commonv2.RegisterResponse, error) {
	f.record(ctx, "Register", in)
	return answer(f, f.register)
}

func (f *fakeTower) AddAppointment(ctx context.Context, in *commonv2.AddAppointmentRequest, _ ...grpc.CallOption) (*commonv2.AddAppointmentResponse, error) {
	f.record(ctx, "AddAppointment", in)
	return answer(f, f.addAppointment)
}

func (f *fakeTower) GetAppointment(ctx context.Context, in *commonv2.GetAppointmentRequest, _ ...grpc.CallOption) (*commonv2.GetAppointmentResponse, error) {
	f.record(ctx, "GetAppointment", in)
	return answer(f, f.getAppointment)
}

func (f *fakeTower) GetSubscriptionInfo(ctx context.Context, in *commonv2.GetSubscriptionInfoRequest, _ ...grpc.CallOption) (*commonv2.GetSubscriptionInfoResponse, error) {
	f.record(ctx, "GetSubscriptionInfo", in)
	return answer(f, f.getSubscriptionInfo)
}

// newFake answers every method with an empty success, so a request that gets through
// the HTTP checks gets 200.
func newFake() *fakeTower {
	return &fakeTower{
		register:            &commonv2.RegisterResponse{},
		addAppointment:      &commonv2.AddAppointmentResponse{},
		getAppointment:      &commonv2.GetAppointmentResponse{},
		getSubscriptionInfo: &commonv2.GetSubscriptionInfoResponse{},
	}
}

func assertNoCalls(t *testing.T, f *fakeTower) {
	t.Helper()
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("the request reached the gRPC client: %d call(s), first %s", len(calls), calls[0].method)
	}
}

func newServer(t *testing.T, client teosv2.PublicTowerServicesClient) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.New(client, nil))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

// send makes a request with a Content-Length (net/http sets it from the body) and the
// given Content-Type, none when contentType is "-".
func send(t *testing.T, srv *httptest.Server, method, path, body, contentType string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "-" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func post(t *testing.T, srv *httptest.Server, path, body string) response {
	t.Helper()
	return send(t, srv, http.MethodPost, path, body, "application/json")
}

// sendRaw writes request bytes as they are, for what net/http's client will not send.
func sendRaw(t *testing.T, srv *httptest.Server, request string) response {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}
