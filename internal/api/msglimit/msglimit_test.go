package msglimit_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/api/msglimit"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// locatorTower answers get_subscription_info with n locators.
type locatorTower struct {
	teosv2.UnimplementedPublicTowerServicesServer
	n int
}

func (l locatorTower) GetSubscriptionInfo(context.Context, *commonv2.GetSubscriptionInfoRequest) (*commonv2.GetSubscriptionInfoResponse, error) {
	locs := make([][]byte, l.n)
	for i := range locs {
		locs[i] = make([]byte, teos.LocatorLen)
	}
	return &commonv2.GetSubscriptionInfoResponse{AvailableSlots: 1, SubscriptionExpiry: 2, Locators: locs}, nil
}

func dialTower(t *testing.T, n int, opts ...grpc.ServerOption) teosv2.PublicTowerServicesClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	teosv2.RegisterPublicTowerServicesServer(srv, locatorTower{n: n})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), msglimit.DialOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return teosv2.NewPublicTowerServicesClient(conn)
}

// TestAnswerOverLimitIsTheTowersError: an answer over the bound is refused by the server with
// a message that says so, which the HTTP edge answers with the unexpected-error code (255),
// not with 65 as grpc-go's own ResourceExhausted was; an answer within it goes through.
func TestAnswerOverLimitIsTheTowersError(t *testing.T) {
	const limit = 1000 // bytes: 18 bytes a locator
	client := dialTower(t, 100, grpc.ChainUnaryInterceptor(msglimit.Answers(limit, nil)))
	_, err := client.GetSubscriptionInfo(t.Context(), &commonv2.GetSubscriptionInfoRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "larger than the tower sends in one message (1000 bytes)") {
		t.Fatalf("over the limit: %v", err)
	}
	if httpStatus, body := httpapi.StatusToHTTP(err); httpStatus != 400 || body.Code != teos.ErrCodeUnexpectedError {
		t.Fatalf("HTTP edge answers %d / %d, want 400 / %d", httpStatus, body.Code, teos.ErrCodeUnexpectedError)
	}

	client = dialTower(t, 50, grpc.ChainUnaryInterceptor(msglimit.Answers(limit, nil)))
	if resp, err := client.GetSubscriptionInfo(t.Context(), &commonv2.GetSubscriptionInfoRequest{}); err != nil || len(resp.GetLocators()) != 50 {
		t.Fatalf("within the limit: %v", err)
	}
}

// TestClientTakesPastFourMiB: teosd's servers and clients agree on MaxMessageSize, so an answer
// past grpc-go's default 4 MiB receive limit arrives whole.
func TestClientTakesPastFourMiB(t *testing.T) {
	const n = 250_000 // 4.5 MB
	client := dialTower(t, n, msglimit.ServerOptions(nil)...)
	resp, err := client.GetSubscriptionInfo(t.Context(), &commonv2.GetSubscriptionInfoRequest{})
	if err != nil || len(resp.GetLocators()) != n {
		t.Fatalf("%d locators: %v", len(resp.GetLocators()), err)
	}
}

// BenchmarkAnswers: what the size check adds to each call, on an add_appointment receipt (the
// call teosd serves most), against the bare handler.
func BenchmarkAnswers(b *testing.B) {
	resp := &commonv2.AddAppointmentResponse{Locator: make([]byte, 16), StartBlock: 110,
		Signature: strings.Repeat("d", 104), AvailableSlots: 1000, SubscriptionExpiry: 5000}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	info := &grpc.UnaryServerInfo{FullMethod: "/teos.v2.PublicTowerServices/AddAppointment"}
	for _, bc := range []struct {
		name string
		call grpc.UnaryServerInterceptor
	}{
		{"bare", func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}},
		{"checked", msglimit.Answers(msglimit.MaxMessageSize, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.call(b.Context(), nil, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
