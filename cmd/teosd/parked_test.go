package main

import (
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/teos-go/teos/internal/api/limits"
	"github.com/teos-go/teos/internal/config"
)

func TestParkedBudgetFitsTheOpenFilesLimit(t *testing.T) {
	cfg := config.Default()
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		configured      uint32
		maxConns, fd    int
		want, wantPerAd int
	}{
		{16384, 8192, 0, 16384, 4096},       // no known limit
		{16384, 8192, 1 << 20, 16384, 4096}, // room for all
		{16384, 8192, 20000, 11552, 2888},   // 20000 - 256 reserved - 8192 served; a quarter per address, as configured
		{16384, 1024 - 256, 1024, 0, 0},     // the served connections take all
		{0, 8192, 1 << 20, 0, 4096},         // parking off
	} {
		cfg.APIMaxParkedConnections = c.configured
		got, per := parkedBudget(&cfg, c.maxConns, c.fd, log)
		if got != c.want || per != c.wantPerAd {
			t.Errorf("parkedBudget(%d, served %d, nofile %d) = %d, %d per address; want %d, %d", c.configured, c.maxConns, c.fd, got, per, c.want, c.wantPerAd)
		}
	}
}

func TestWatchIdleHooksTheListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := limits.NewListener(inner, limits.ListenerConfig{MaxPerAddress: 1, MaxParked: 1})
	defer lis.Close()
	srv := newHTTPServer(http.NotFoundHandler(), defaultAPITimeouts)
	watchIdle(srv, lis)
	if srv.ConnState == nil {
		t.Fatal("the public API's server does not report idle connections to its listener")
	}
}
