package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// pprofEnv names the loopback address of an opt-in Go profiling endpoint, for measuring the add
// path (docs/PERFORMANCE.md). It is an environment variable rather than a teos.toml key: it is a
// developer's tool, not part of rust-teos's configuration.
const pprofEnv = "TEOSD_PPROF"

func init() {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	if err := servePprof(addr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", pprofEnv, err)
		os.Exit(1)
	}
}

// servePprof serves net/http/pprof on addr, which must be a loopback address: profiles reveal
// memory contents and cost CPU, so they are never offered to the network.
func servePprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return nil
}
