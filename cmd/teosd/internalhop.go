package main

import (
	"context"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// hopEnv, set to "tcp", makes the HTTP edge reach the internal API through its TCP port, as
// before the in-process hop: for measuring what the hop costs (docs/PERFORMANCE.md).
const hopEnv = "TEOSD_INTERNAL_HOP"

// hopBuffer is the in-process pipe's buffer per direction; a bigger message streams through it.
const hopBuffer = 256 << 10

// internalHop returns the listener the HTTP edge's gRPC client reaches the internal API through
// in this process, with the target and dial options for it. It is an in-process pipe: the same
// gRPC service, interceptors and messages as over the internal_api_port (which stays open for
// anything else that connects to it), without the kernel's TCP path, which cost about half of
// the hop's CPU per call (BenchmarkInternalHop). With TEOSD_INTERNAL_HOP=tcp, lis is nil and the
// edge dials tcpLis.
func internalHop(tcpLis net.Listener) (lis net.Listener, target string, opts []grpc.DialOption) {
	if os.Getenv(hopEnv) == "tcp" {
		return nil, tcpLis.Addr().String(), nil
	}
	pipe := bufconn.Listen(hopBuffer)
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return pipe.DialContext(ctx) }
	return pipe, "passthrough:///internal-api", []grpc.DialOption{grpc.WithContextDialer(dial)}
}
