package config

import (
	"errors"
	"io"
	"math"
	"testing"
)

func TestAPILimitKeysAndFlags(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "api_max_connections = 10\napi_rate_limit = 2.5\napi_rate_burst = 7\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.APIMaxConnections != 10 || cfg.APIRateLimit != 2.5 || cfg.APIRateBurst != 7 || len(warnings) != 0 {
		t.Fatalf("from the file: %d %v %d, warnings %q", cfg.APIMaxConnections, cfg.APIRateLimit, cfg.APIRateBurst, warnings)
	}
	cfg, _ = mustLoad(t, "--datadir", dir, "--apimaxconnections", "0", "--apiratelimit", "0.5", "--apirateburst", "1")
	if cfg.APIMaxConnections != 0 || cfg.APIRateLimit != 0.5 || cfg.APIRateBurst != 1 {
		t.Fatalf("flags over the file: %d %v %d", cfg.APIMaxConnections, cfg.APIRateLimit, cfg.APIRateBurst)
	}
	if _, _, err := Load([]string{"--datadir", dir, "--apirateburst", "4294967296"}, io.Discard); err == nil {
		t.Fatal("burst above u32 accepted")
	}
	if d := defaultsIn(dir); d.APIRateLimit != 0 || d.APIMaxConnections == 0 {
		t.Fatalf("defaults: rate %v (want off), max connections %d (want bounded)", d.APIRateLimit, d.APIMaxConnections)
	}
}

func TestValidateRateLimit(t *testing.T) {
	for _, rate := range []float64{-1, math.NaN(), math.Inf(1)} {
		c := validConfig()
		c.APIRateLimit = rate
		if err := c.Validate(); !errors.Is(err, ErrBadLimit) {
			t.Errorf("rate %v: %v, want ErrBadLimit", rate, err)
		}
	}
	c := validConfig()
	c.APIRateLimit = 0.1
	if err := c.Validate(); err != nil {
		t.Errorf("rate 0.1: %v", err)
	}
}
