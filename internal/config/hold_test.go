package config

import (
	"errors"
	"testing"
	"time"
)

func TestAPIHoldTimeout(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "api_hold_timeout = 12\n")
	if d := defaultsIn(t.TempDir()); d.APIHoldTimeout != DefaultAPIHoldTimeout || d.HoldTimeout() != 45*time.Second {
		t.Fatalf("default %d", d.APIHoldTimeout)
	}
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.APIHoldTimeout != 12 || len(warnings) != 0 {
		t.Fatalf("from the file: %d, warnings %q", cfg.APIHoldTimeout, warnings)
	}
	cfg, _ = mustLoad(t, "--datadir", dir, "--apiholdtimeout", "0")
	if cfg.APIHoldTimeout != 0 {
		t.Fatalf("flag over the file: %d", cfg.APIHoldTimeout)
	}
	c := validConfig()
	c.APIHoldTimeout = MaxAPIHoldTimeout + 1
	if err := c.Validate(); !errors.Is(err, ErrBadHold) {
		t.Fatalf("over the maximum: %v", err)
	}
}
