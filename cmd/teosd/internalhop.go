package main

import (
	"context"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/teos-go/teos/internal/api/msglimit"
)

// hopEnv, set to "pipe", makes the HTTP edge reach the internal API through an in-process pipe
// instead of the internal_api_port over loopback TCP. It is a measurement switch, not a setting:
// the pipe costs less CPU per call in BenchmarkInternalHop, but a whole teosd under teos-bench
// showed no difference beyond the machine's noise (docs/PERFORMANCE.md), so TCP stays the default.
const hopEnv = "TEOSD_INTERNAL_HOP"

// hopBuffer is the in-process pipe's buffer per direction; a bigger message streams through it.
const hopBuffer = 256 << 10

// internalHop returns the listener the HTTP edge's gRPC client reaches the internal API through,
// with the target and dial options for it: tcpLis itself (lis nil) unless TEOSD_INTERNAL_HOP=pipe,
// then an in-process pipe serving the same gRPC service, interceptors and messages (the
// internal_api_port stays open for anything else that connects to it).
// Either way the client takes answers up to msglimit.MaxMessageSize (a big get_subscription_info).
func internalHop(tcpLis net.Listener) (lis net.Listener, target string, opts []grpc.DialOption) {
	if os.Getenv(hopEnv) != "pipe" {
		return nil, tcpLis.Addr().String(), []grpc.DialOption{msglimit.DialOption()}
	}
	pipe := bufconn.Listen(hopBuffer)
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return pipe.DialContext(ctx) }
	return pipe, "passthrough:///internal-api", []grpc.DialOption{grpc.WithContextDialer(dial), msglimit.DialOption()}
}
