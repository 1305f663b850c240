package config

import (
	"errors"
	"strings"
	"testing"
)

// TestPollingIntervalBareNumberRefused: TOML reads a bare number as nanoseconds, so
// `polling_interval = 1` (meant as polling_delta's seconds) would poll bitcoind back to back;
// teosd refuses it with a reason instead. A duration string still works.
func TestPollingIntervalBareNumberRefused(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"polling_interval = 1", false},
		{"polling_interval = 500000", false}, // 0.5 ms
		{`polling_interval = "1s"`, true},
		{`polling_interval = "1ms"`, true},
		{`polling_interval = "0s"`, true}, // off: polling_delta applies
	} {
		dir := writeConf(t, tc.line+"\nbtc_rpc_user = \"u\"\nbtc_rpc_password = \"p\"\n")
		cfg, warnings := mustLoad(t, "--datadir", dir)
		if len(warnings) != 0 {
			t.Fatalf("%s: warnings %q", tc.line, warnings)
		}
		err := cfg.Validate()
		if tc.ok && err != nil {
			t.Fatalf("%s: Validate() = %v", tc.line, err)
		}
		if !tc.ok && (!errors.Is(err, ErrBadPolling) || !strings.Contains(err.Error(), `"200ms"`)) {
			t.Fatalf("%s: Validate() = %v (interval %v), want ErrBadPolling naming a duration string", tc.line, err, cfg.PollingInterval)
		}
	}
}
