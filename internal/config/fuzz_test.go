package config_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/config"
)

// FuzzLoad writes arbitrary bytes as teos.toml. Load must not panic or fail: an unusable file
// falls back to the defaults with a warning (rust-teos), and whatever it returns, Validate
// and the derived getters must cope with it.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("teos.toml.example")
	if err != nil {
		f.Fatal(err)
	}
	rust, err := os.ReadFile(filepath.Join("testdata", "rust-teos.toml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(example), string(rust), "", "api_port = 70000", "api_port = -1", "btc_network = 3",
		"polling_interval = \"-5s\"", "polling_interval = \"1x\"", "[x]\ny = 1", "debug = \"yes\"",
		"api_bind = \"\\uD800\"", "a = [[[[[[]]]]]]", "subscription_slots = 4294967296", "=\n",
		"btc_rpc_user = \"u\"\nbtc_rpc_password = \"p\"\nbtc_rpc_cookie = \"c\"",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir() // one per worker process; inputs run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, config.FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, warnings, err := config.Load([]string{"--datadir", dir}, io.Discard)
		if err != nil {
			t.Fatalf("Load with file %q: %v", data, err)
		}
		if cfg.DataDir != dir {
			t.Fatalf("DataDir %q, want %q", cfg.DataDir, dir)
		}
		for _, w := range warnings {
			if w == "" || !strings.Contains(w, config.FileName) {
				t.Fatalf("warning %q does not name the file", w)
			}
		}
		_ = cfg.Validate()
		_ = cfg.NonDefault()
		_ = cfg.PollEvery()
		_ = cfg.BitcoindRPCPort()
		_ = cfg.NetworkDir()
	})
}
