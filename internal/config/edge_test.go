package config

import (
	"errors"
	"slices"
	"testing"
)

func TestEdgeKeysAndFlags(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "api_max_connections_per_address = 5\napi_trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.APIMaxConnectionsPerAddress != 5 || !slices.Equal(cfg.APITrustedProxies.List(), []string{"127.0.0.1", "10.0.0.0/8"}) || len(warnings) != 0 {
		t.Fatalf("from the file: %d %q, warnings %q", cfg.APIMaxConnectionsPerAddress, cfg.APITrustedProxies.List(), warnings)
	}
	cfg, _ = mustLoad(t, "--datadir", dir, "--apimaxconnectionsperaddress", "0", "--apitrustedproxies", "::1, 192.168.0.0/16")
	if cfg.APIMaxConnectionsPerAddress != 0 || !slices.Equal(cfg.APITrustedProxies.List(), []string{"::1", "192.168.0.0/16"}) {
		t.Fatalf("flags over the file: %d %q", cfg.APIMaxConnectionsPerAddress, cfg.APITrustedProxies.List())
	}
	if d := defaultsIn(dir); len(d.APITrustedProxies.List()) != 0 || d.APIMaxConnectionsPerAddress == 0 {
		t.Fatalf("defaults: proxies %q (want none), per address %d (want bounded)", d.APITrustedProxies.List(), d.APIMaxConnectionsPerAddress)
	}
	dir = writeConf(t, "api_max_parked_connections = 10\napi_max_parked_connections_per_address = 3\n")
	if cfg, warnings := mustLoad(t, "--datadir", dir); cfg.APIMaxParkedConnections != 10 || cfg.APIMaxParkedConnectionsPerAddress != 3 || len(warnings) != 0 {
		t.Fatalf("parked bounds from the file: %d %d, warnings %q", cfg.APIMaxParkedConnections, cfg.APIMaxParkedConnectionsPerAddress, warnings)
	}
	if cfg, _ := mustLoad(t, "--datadir", dir, "--apimaxparkedconnections", "0", "--apimaxparkedconnectionsperaddress", "7"); cfg.APIMaxParkedConnections != 0 || cfg.APIMaxParkedConnectionsPerAddress != 7 {
		t.Fatalf("parked bounds from the flags: %d %d", cfg.APIMaxParkedConnections, cfg.APIMaxParkedConnectionsPerAddress)
	}
	if d := defaultsIn(dir); d.APIMaxParkedConnections == 0 || d.APIMaxParkedConnectionsPerAddress == 0 {
		t.Fatalf("defaults: parking off (%d, %d)", d.APIMaxParkedConnections, d.APIMaxParkedConnectionsPerAddress)
	}
	_, warnings = mustLoad(t, "--datadir", writeConf(t, "api_trusted_proxies = [1]\n"))
	if len(warnings) == 0 {
		t.Fatal("a list of numbers was accepted")
	}
}

func TestValidateTrustedProxies(t *testing.T) {
	c := validConfig()
	c.APITrustedProxies = "127.0.0.1,localhost,10.0.0.0/40"
	err := c.Validate()
	if !errors.Is(err, ErrBadTrustedProxy) {
		t.Fatalf("%v, want ErrBadTrustedProxy", err)
	}
	c.APITrustedProxies = "127.0.0.1,::1,10.0.0.0/8"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
