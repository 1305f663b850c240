package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"runtime"
)

// hopEnv, set to "tcp", makes the HTTP edge reach the internal API through its TCP port as before
// the Unix socket: for measuring what the socket buys (docs/PERFORMANCE.md).
const hopEnv = "TEOSD_INTERNAL_HOP"

// internalHop opens the listener the HTTP edge's gRPC client dials to reach the internal API in
// this process, and returns the gRPC target for it. On Linux it is a Unix socket in the abstract
// namespace (no file to clean up after a crash; reachable only from this host, as the loopback
// TCP port is): the same gRPC service, with a cheaper kernel path than TCP over loopback. The
// internal_api_port listener stays for anything else that connects to it. Elsewhere, or when the
// socket cannot be opened, the edge dials tcpLis (lis is then nil).
func internalHop(tcpLis net.Listener) (lis net.Listener, target string) {
	tcp := tcpLis.Addr().String()
	if runtime.GOOS != "linux" || os.Getenv(hopEnv) == "tcp" {
		return nil, tcp
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	name := fmt.Sprintf("teosd-internal-api-%d-%s", os.Getpid(), hex.EncodeToString(nonce[:]))
	l, err := net.Listen("unix", "@"+name)
	if err != nil {
		return nil, tcp
	}
	return l, "unix-abstract:" + name
}
