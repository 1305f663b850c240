package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// withHome points ~ at a fresh temp dir.
func withHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	return home
}

func TestDefaultMatchesTable(t *testing.T) {
	home := withHome(t)
	want := Config{
		APIBind: "127.0.0.1", APIPort: 9814,
		RPCBind: "127.0.0.1", RPCPort: 8814,
		BTCNetwork: "mainnet", BTCRPCConnect: "localhost", BTCRPCPort: 0,
		DataDir:        filepath.Join(home, ".teos"),
		TorControlPort: 9051, OnionHiddenServicePort: 9814,
		SubscriptionSlots: 10000, SubscriptionDuration: 4320, ExpiryDelta: 6, MinToSelfDelay: 20,
		PollingDelta:    60,
		InternalAPIBind: "127.0.0.1", InternalAPIPort: 50051,
		APIMaxConnections: 8192, APIHoldTimeout: 45, APIMaxConnectionsPerAddress: 64, APIMaxParkedConnections: 16384, APIMaxParkedConnectionsPerAddress: 4096,
		LndTowerMaxConnections: 1024, LndTowerMaxConnectionsPerAddress: 32,
		Registration: "open",
	}
	if got := Default(); got != want {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", got, want)
	}
}

func validConfig() Config {
	c := Default()
	c.BTCRPCUser, c.BTCRPCPassword = "user", "pass"
	return c
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr error
	}{
		{"user+password", func(*Config) {}, nil},
		{"cookie only", func(c *Config) { c.BTCRPCUser, c.BTCRPCPassword, c.BTCRPCCookie = "", "", "~/.bitcoin/.cookie" }, nil},
		{"both methods", func(c *Config) { c.BTCRPCCookie = "/c" }, ErrMultipleAuth},
		{"cookie and user", func(c *Config) { c.BTCRPCPassword, c.BTCRPCCookie = "", "/c" }, ErrMultipleAuth},
		{"no auth", func(c *Config) { c.BTCRPCUser, c.BTCRPCPassword = "", "" }, ErrNoAuth},
		{"user without password", func(c *Config) { c.BTCRPCPassword = "" }, ErrNoAuth},
		{"password without user", func(c *Config) { c.BTCRPCUser = "" }, ErrNoAuth},
		{"bad network", func(c *Config) { c.BTCNetwork = "bitcoin" }, ErrBadNetwork},
		{"empty network", func(c *Config) { c.BTCNetwork = "" }, ErrBadNetwork},
		{"testnet", func(c *Config) { c.BTCNetwork = "testnet" }, nil},
		{"signet", func(c *Config) { c.BTCNetwork = "signet" }, nil},
		{"regtest", func(c *Config) { c.BTCNetwork = "regtest" }, nil},
		{"bitcoind name main", func(c *Config) { c.BTCNetwork = "main" }, nil},
		{"zero api port", func(c *Config) { c.APIPort = 0 }, ErrZeroPort},
		{"zero rpc port", func(c *Config) { c.RPCPort = 0 }, ErrZeroPort},
		{"zero internal port", func(c *Config) { c.InternalAPIPort = 0 }, ErrZeroPort},
		{"zero btc port means default", func(c *Config) { c.BTCRPCPort = 0 }, nil},
		{"zero tor port unused", func(c *Config) { c.TorControlPort = 0 }, nil},
		{"zero tor port with tor", func(c *Config) { c.TorSupport, c.TorControlPort = true, 0 }, ErrZeroPort},
		{"zero onion port with tor", func(c *Config) { c.TorSupport, c.OnionHiddenServicePort = true, 0 }, ErrZeroPort},
		{"zero polling delta", func(c *Config) { c.PollingDelta = 0 }, ErrBadPolling},
		{"negative interval", func(c *Config) { c.PollingInterval = -time.Second }, ErrBadPolling},
		// btc_rpc_connect is a host: bitcoin-cli's rpcconnect takes host:port, rust-teos does not.
		{"rpc host name", func(c *Config) { c.BTCRPCConnect = "bitcoind.lan" }, nil},
		{"rpc IPv4", func(c *Config) { c.BTCRPCConnect = "10.0.0.2" }, nil},
		{"rpc IPv6", func(c *Config) { c.BTCRPCConnect = "::1" }, nil},
		{"rpc host with port", func(c *Config) { c.BTCRPCConnect = "127.0.0.1:18443" }, ErrBadRPCConnect},
		{"rpc IPv6 with port", func(c *Config) { c.BTCRPCConnect = "[::1]:8332" }, ErrBadRPCConnect},
		{"rpc IPv6 in brackets", func(c *Config) { c.BTCRPCConnect = "[::1]" }, ErrBadRPCConnect},
		{"rpc URL", func(c *Config) { c.BTCRPCConnect = "http://127.0.0.1" }, ErrBadRPCConnect},
		// An empty bind address listened on every interface: for internal_api_bind, the
		// internal API, plaintext, past the HTTP edge's limits. rust-teos refuses to start.
		{"empty api bind", func(c *Config) { c.APIBind = "" }, ErrEmptyBind},
		{"empty rpc bind", func(c *Config) { c.RPCBind = "" }, ErrEmptyBind},
		{"empty internal api bind", func(c *Config) { c.InternalAPIBind = "" }, ErrEmptyBind},
		{"every interface, said so", func(c *Config) { c.APIBind, c.InternalAPIBind = "0.0.0.0", "::" }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == nil && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.BTCNetwork = "nope"
	err := c.Validate()
	for _, want := range []error{ErrNoAuth, ErrBadNetwork} {
		if !errors.Is(err, want) {
			t.Errorf("Validate() = %v, want it to include %v", err, want)
		}
	}
}

func TestDefaultsDoNotValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); !errors.Is(err, ErrNoAuth) {
		t.Fatalf("Default().Validate() = %v, want ErrNoAuth", err)
	}
}

func TestNetworks(t *testing.T) {
	for _, tc := range []struct {
		network, chain string
		port           uint16
	}{
		{"mainnet", "main", 8332},
		{"testnet", "test", 18332},
		{"regtest", "regtest", 18443},
		{"signet", "signet", 38332},
		{"main", "main", 8332},
		{"test", "test", 18332},
	} {
		t.Run(tc.network, func(t *testing.T) {
			c := Config{BTCNetwork: tc.network, DataDir: "/data"}
			if got := c.BitcoindNetwork(); got != tc.chain {
				t.Errorf("BitcoindNetwork() = %q, want %q", got, tc.chain)
			}
			if got, want := c.NetworkDir(), filepath.Join("/data", tc.chain); got != want {
				t.Errorf("NetworkDir() = %q, want %q", got, want)
			}
			if got := c.BitcoindRPCPort(); got != tc.port {
				t.Errorf("BitcoindRPCPort() = %d, want %d", got, tc.port)
			}
			c.BTCRPCPort = 1234
			if got := c.BitcoindRPCPort(); got != 1234 {
				t.Errorf("BitcoindRPCPort() with btc_rpc_port = %d, want 1234", got)
			}
		})
	}
}

func TestPollEvery(t *testing.T) {
	c := Default()
	if got := c.PollEvery(); got != time.Minute {
		t.Fatalf("PollEvery() = %v, want 1m", got)
	}
	c.PollingInterval = 200 * time.Millisecond
	if got := c.PollEvery(); got != 200*time.Millisecond {
		t.Fatalf("PollEvery() = %v, want 200ms", got)
	}
}

func TestExpandHome(t *testing.T) {
	home := withHome(t)
	for in, want := range map[string]string{
		"~":         home,
		"~/":        home,
		"~/.teos":   filepath.Join(home, ".teos"),
		"/abs/~/x":  "/abs/~/x",
		"rel/dir":   "rel/dir",
		"~other/.x": "~other/.x", // other users' homes are not expanded
	} {
		got, err := ExpandHome(in)
		if err != nil || got != want {
			t.Errorf("ExpandHome(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	t.Setenv("HOME", "")
	saved := userHome
	t.Cleanup(func() { userHome = saved })
	userHome = func() (string, error) { return "", errors.New("no such user") }
	if _, err := ExpandHome("~/x"); !errors.Is(err, ErrNoHome) {
		t.Errorf("ExpandHome without HOME nor a user entry: err = %v, want ErrNoHome", err)
	}
}

// TestExpandHomeWithoutHOME: where $HOME is not set (a systemd system unit without User=, which
// rust-teos's own units may be), rust-teos takes the home from the user database (getpwuid),
// so its default data dir ~/.teos and its template's btc_rpc_cookie "~/.bitcoin/.cookie" work
// there; teosd did not start ("cannot expand ~").
func TestExpandHomeWithoutHOME(t *testing.T) {
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		t.Skipf("no user database entry for this user (%v)", err)
	}
	t.Setenv("HOME", "")
	os.Unsetenv("HOME")
	got, err := ExpandHome("~/.teos")
	if want := filepath.Join(u.HomeDir, ".teos"); err != nil || got != want {
		t.Fatalf("ExpandHome(~/.teos) without HOME = %q, %v; want %q", got, err, want)
	}
	cfg, _, err := Load(nil, io.Discard)
	if want := filepath.Join(u.HomeDir, ".teos"); err != nil || cfg.DataDir != want {
		t.Fatalf("Load() without HOME: datadir %q, %v; want %q", cfg.DataDir, err, want)
	}
}

func TestReadCookie(t *testing.T) {
	home := withHome(t)
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content    string
		wantUser, wantPw string
		wantErr          error
	}{
		{"good", "__cookie__:abcdef0123", "__cookie__", "abcdef0123", nil},
		{"trailing newline", "__cookie__:abc\n", "__cookie__", "abc", nil},
		{"colon in password", "u:p:q", "u", "p:q", nil},
		{"missing colon", "__cookie__abc", "", "", ErrBadCookie},
		{"empty user", ":abc", "", "", ErrBadCookie},
		{"empty password", "u:", "", "", ErrBadCookie},
		{"empty file", "", "", "", ErrBadCookie},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(".cookie", tc.content)
			user, pw, err := ReadCookie("~/.cookie") // also checks ~ expansion
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("ReadCookie() err = %v, want %v", err, tc.wantErr)
			}
			if user != tc.wantUser || pw != tc.wantPw {
				t.Fatalf("ReadCookie() = %q, %q; want %q, %q", user, pw, tc.wantUser, tc.wantPw)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, _, err := ReadCookie(filepath.Join(home, "absent"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ReadCookie(absent) err = %v, want ErrNotExist", err)
		}
	})
}

func TestNonDefault(t *testing.T) {
	withHome(t)
	c := Default()
	if got := c.NonDefault(); len(got) != 0 {
		t.Fatalf("NonDefault() of defaults = %v, want none", got)
	}
	c.BTCRPCUser, c.BTCRPCPassword = "alice", "s3cretPassw0rd"
	c.APIPort = 1234
	c.PollingInterval = 200 * time.Millisecond
	c.DataDir = "/srv/teos"

	got := map[string]string{}
	var all strings.Builder
	for _, a := range c.NonDefault() {
		got[a.Key] = a.Value.String()
		fmt.Fprintf(&all, "%s=%s ", a.Key, a.Value)
	}
	for _, secret := range []string{"s3cretPassw0rd", "alice"} {
		if strings.Contains(all.String(), secret) {
			t.Fatalf("NonDefault() leaks %q: %s", secret, all.String())
		}
	}
	want := map[string]string{
		"btc_rpc_user": "***", "btc_rpc_password": "***", "api_port": "1234",
		"polling_interval": "200ms", "datadir": "/srv/teos",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("NonDefault() = %v, want %v", got, want)
	}
	// The attrs must render through a real handler without the secret too.
	var buf strings.Builder
	slog.New(slog.NewTextHandler(&buf, nil)).LogAttrs(t.Context(), slog.LevelInfo, "config", c.NonDefault()...)
	if strings.Contains(buf.String(), "s3cretPassw0rd") {
		t.Fatalf("log line leaks the password: %s", buf.String())
	}
}
