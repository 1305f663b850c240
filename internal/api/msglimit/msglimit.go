// Package msglimit bounds the size of one gRPC message of the tower's internal and admin APIs
// and makes an answer over the bound a clear error of the tower's own.
//
// grpc-go receives at most 4 MiB per message by default: get_subscription_info failed past
// about 233,000 locators (18 bytes each on the wire), and the HTTP edge answered that
// ResourceExhausted with 400 / 65, a code that reads as the user's fault. rust-teos (tonic,
// also 4 MiB) fails at the same size; the JSON answers are unchanged.
package msglimit

import (
	"context"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// MaxMessageSize is the largest answer the tower sends and its clients (the HTTP edge, teos-cli)
// receive: 256 MiB, 14.9 million locators in one get_subscription_info, more than the
// 10 million appointments a whole tower is measured at (docs/PERFORMANCE.md), so a user of such
// a tower gets every locator even if all are theirs. It is fixed rather than unbounded because
// the edge holds the answer several times over while it writes the JSON (the message, the
// decoded locators, their hex and the JSON itself): gigabytes at this bound.
// get_all_appointments carries whole appointments and can reach it on a big tower: it then fails
// with TooLarge's message (grpcapi stops reading there), and get_appointments <locator> still
// answers.
const MaxMessageSize = 256 << 20

// ServerOptions are a gRPC server's: answers over MaxMessageSize fail with codes.Internal and a
// message that says so (logged), rather than with grpc-go's ResourceExhausted. Requests keep
// grpc-go's 4 MiB bound: the largest, an add_appointments of 1000 items, is under 2.2 MB.
func ServerOptions(log *slog.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxSendMsgSize(MaxMessageSize), // grpc-go's default is 2 GiB; this is the same bound
		grpc.ChainUnaryInterceptor(Answers(MaxMessageSize, log)),
	}
}

// DialOption lets a client of the tower receive answers up to MaxMessageSize.
func DialOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize))
}

// Answers turns an answer of more than limit bytes into Overflow's error.
func Answers(limit int, log *slog.Logger) grpc.UnaryServerInterceptor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err != nil {
			return resp, err
		}
		if m, ok := resp.(proto.Message); ok {
			if n := proto.Size(m); n > limit {
				log.Error("answer too large to send", "method", info.FullMethod, "bytes", n, "limit", limit)
				return nil, Overflow(n, limit)
			}
		}
		return resp, nil
	}
}

// Overflow is the error for an answer of n bytes over limit: codes.Internal, which the HTTP
// edge answers with rust-teos's unexpected-error code (255), not a code that blames the request.
func Overflow(n, limit int) error {
	return status.Errorf(codes.Internal, "the answer (%d bytes) %s (%d bytes)", n, overflowText, limit)
}

// TooLarge is Overflow for an answer given up before it was complete, its size unknown.
func TooLarge(limit int) error {
	return status.Errorf(codes.Internal, "the answer %s (%d bytes)", overflowText, limit)
}

// IsOverflow reports whether err is Overflow's or TooLarge's error, as a client received it.
func IsOverflow(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Internal && strings.Contains(s.Message(), overflowText)
}

const overflowText = "is larger than the tower sends in one message"
