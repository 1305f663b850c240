// Package config holds teosd's user-facing configuration: defaults, the
// <datadir>/teos.toml file and command-line flags, with rust-teos v0.2 keys,
// flag names and quirks (docs/PROTOCOL.md section 12).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// FileName is the config file read from the data dir (shared with teos-cli).
const FileName = "teos.toml"

// defaultDataDir is unexpanded so flag usage shows what rust-teos shows.
const defaultDataDir = "~/.teos"

// Config is teosd's configuration as the operator wrote it. The toml tags are
// the rust-teos keys; cmd/teosd translates it into each component's Config.
type Config struct {
	APIBind string `toml:"api_bind"`
	APIPort uint16 `toml:"api_port"`
	RPCBind string `toml:"rpc_bind"`
	RPCPort uint16 `toml:"rpc_port"`

	// BTCNetwork is kept as configured (mainnet|testnet|signet|regtest);
	// BitcoindNetwork gives bitcoind's name for it.
	BTCNetwork     string `toml:"btc_network"`
	BTCRPCUser     string `toml:"btc_rpc_user"`
	BTCRPCPassword string `toml:"btc_rpc_password"`
	// BTCRPCCookie is kept as configured; ReadCookie expands ~.
	BTCRPCCookie  string `toml:"btc_rpc_cookie"`
	BTCRPCConnect string `toml:"btc_rpc_connect"`
	// BTCRPCPort 0 means the network default (see BitcoindRPCPort).
	BTCRPCPort uint16 `toml:"btc_rpc_port"`

	// DataDir comes only from --datadir, with ~ expanded.
	DataDir string `toml:"-"`
	// ImportRustTeos comes only from --importrustteos (teos-go extension): a rust-teos
	// database to import into a new store before starting, with ~ expanded.
	ImportRustTeos string `toml:"-"`

	Debug     bool `toml:"debug"`
	DepsDebug bool `toml:"deps_debug"`
	// OverwriteKey and ForceUpdate are decoded from the file only to be
	// overridden: like rust-teos, the flag value always wins.
	OverwriteKey bool `toml:"overwrite_key"`
	ForceUpdate  bool `toml:"force_update"`
	TorSupport   bool `toml:"tor_support"`

	TorControlPort         uint16 `toml:"tor_control_port"`
	OnionHiddenServicePort uint16 `toml:"onion_hidden_service_port"`

	SubscriptionSlots    uint32 `toml:"subscription_slots"`
	SubscriptionDuration uint32 `toml:"subscription_duration"` // blocks
	ExpiryDelta          uint32 `toml:"expiry_delta"`          // blocks
	MinToSelfDelay       uint32 `toml:"min_to_self_delay"`     // unused, as in rust-teos

	// PollingDelta is the bitcoind polling period in seconds (rust-teos).
	PollingDelta uint32 `toml:"polling_delta"`
	// PollingInterval is a teos-go extension (key polling_interval, e.g.
	// "200ms"; flag --pollinginterval) for finer polling in tests and
	// operations. When > 0 it wins over PollingDelta.
	PollingInterval time.Duration `toml:"polling_interval"`

	InternalAPIBind string `toml:"internal_api_bind"`
	InternalAPIPort uint16 `toml:"internal_api_port"`

	// MetricsBind is a teos-go extension (key metrics_bind, flag
	// --metricsbind): address of a metrics endpoint; "" disables it.
	MetricsBind string `toml:"metrics_bind"`

	// DatabaseURL is a teos-go extension (key database_url, flag --databaseurl): a
	// PostgreSQL URL (postgres://user@host:5432/db) to keep the tower's state in, shared by
	// every instance of one tower; "" keeps the embedded bbolt file in the data dir.
	DatabaseURL string `toml:"database_url"`

	// Public API limits, teos-go extensions. APIMaxConnections bounds the HTTP API's open
	// connections (0 = unlimited). APIRateLimit is requests per second per client address
	// per endpoint, delayed beyond it; 0 (the default, as rust-teos) turns it off.
	// APIRateBurst is how many may come at once (0 = ceil(APIRateLimit)).
	APIMaxConnections uint32  `toml:"api_max_connections"`
	APIRateLimit      float64 `toml:"api_rate_limit"`
	APIRateBurst      uint32  `toml:"api_rate_burst"`

	// APIHoldTimeout is a teos-go extension (key api_hold_timeout, flag --apiholdtimeout):
	// how many seconds a request is held while a transient fault of the tower lasts
	// (bitcoind unreachable, disk full) before it is answered 503 / 32; 0 answers at once.
	APIHoldTimeout uint32 `toml:"api_hold_timeout"`

	// The public edge (teos-go extensions, edge.go).
	APIMaxConnectionsPerAddress uint32   `toml:"api_max_connections_per_address"`
	APITrustedProxies           AddrList `toml:"api_trusted_proxies"`
	// Connections past the per-address cap wait parked (edge.go).
	APIMaxParkedConnections           uint32 `toml:"api_max_parked_connections"`
	APIMaxParkedConnectionsPerAddress uint32 `toml:"api_max_parked_connections_per_address"`

	// Who may register, teos-go extensions (registration.go).
	Registration     string `toml:"registration"`
	RegistrationRate uint32 `toml:"registration_rate"`
	MaxStoredBytes   uint64 `toml:"max_stored_bytes"`

	// LndTowerBind is a teos-go extension (key lnd_tower_bind, flag --lndtowerbind): address
	// of the listener for lnd's watchtower clients (brontide, lnd's wtwire protocol), e.g.
	// "0.0.0.0:9911"; "" (the default) turns it off. Served by the teosd built from lnd/.
	LndTowerBind string `toml:"lnd_tower_bind"`
	// Connection caps of the lnd port (teos-go extensions, lnd.go).
	LndTowerMaxConnections           uint32 `toml:"lnd_tower_max_connections"`
	LndTowerMaxConnectionsPerAddress uint32 `toml:"lnd_tower_max_connections_per_address"`
}

// Default returns the rust-teos v0.2 defaults. They do not pass Validate on
// purpose: the operator must configure bitcoind auth.
func Default() Config {
	dataDir, err := ExpandHome(defaultDataDir)
	if err != nil {
		dataDir = defaultDataDir // Load reports the error when it expands again
	}
	return Config{
		APIBind:                "127.0.0.1",
		APIPort:                9814,
		RPCBind:                "127.0.0.1",
		RPCPort:                8814,
		BTCNetwork:             "mainnet",
		BTCRPCConnect:          "localhost",
		DataDir:                dataDir,
		TorControlPort:         9051,
		OnionHiddenServicePort: 9814,
		SubscriptionSlots:      10000,
		SubscriptionDuration:   4320,
		ExpiryDelta:            6,
		MinToSelfDelay:         20,
		PollingDelta:           60,
		InternalAPIBind:        "127.0.0.1",
		InternalAPIPort:        50051,
		APIMaxConnections:      DefaultAPIMaxConnections,
		APIHoldTimeout:         DefaultAPIHoldTimeout,

		APIMaxConnectionsPerAddress: DefaultAPIMaxConnectionsPerAddress,
		Registration:                RegistrationOpen,

		APIMaxParkedConnections:           DefaultAPIMaxParkedConnections,
		APIMaxParkedConnectionsPerAddress: DefaultAPIMaxParkedConnectionsPerAddress,

		LndTowerMaxConnections:           DefaultLndTowerMaxConnections,
		LndTowerMaxConnectionsPerAddress: DefaultLndTowerMaxConnectionsPerAddress,
	}
}

// networks maps every accepted btc_network to bitcoind's chain name and
// default RPC port. rust-teos also lets bitcoind's own names through.
var networks = map[string]struct {
	chain string
	port  uint16
}{
	"mainnet": {"main", 8332},
	"main":    {"main", 8332},
	"testnet": {"test", 18332},
	"test":    {"test", 18332},
	"regtest": {"regtest", 18443},
	"signet":  {"signet", 38332},
}

// Validate checks what teosd cannot start without. It reports every problem
// found, joined; each wraps one of the package's sentinel errors.
func (c *Config) Validate() error {
	var errs []error

	hasUser, hasPass, hasCookie := c.BTCRPCUser != "", c.BTCRPCPassword != "", c.BTCRPCCookie != ""
	switch {
	case hasCookie && (hasUser || hasPass):
		errs = append(errs, ErrMultipleAuth)
	case hasCookie, hasUser && hasPass:
	case hasUser:
		errs = append(errs, fmt.Errorf("btc_rpc_password missing: %w", ErrNoAuth))
	case hasPass:
		errs = append(errs, fmt.Errorf("btc_rpc_user missing: %w", ErrNoAuth))
	default:
		errs = append(errs, ErrNoAuth)
	}

	if _, ok := networks[c.BTCNetwork]; !ok {
		errs = append(errs, fmt.Errorf("%w, got %q", ErrBadNetwork, c.BTCNetwork))
	}
	if err := checkRPCConnect(c.BTCRPCConnect); err != nil {
		errs = append(errs, err)
	}

	type namedPort struct {
		key  string
		port uint16
	}
	ports := []namedPort{{"api_port", c.APIPort}, {"rpc_port", c.RPCPort}, {"internal_api_port", c.InternalAPIPort}}
	if c.TorSupport {
		ports = append(ports, namedPort{"tor_control_port", c.TorControlPort},
			namedPort{"onion_hidden_service_port", c.OnionHiddenServicePort})
	}
	for _, p := range ports {
		if p.port == 0 {
			errs = append(errs, fmt.Errorf("%s: %w", p.key, ErrZeroPort))
		}
	}
	for _, b := range []struct{ key, addr string }{
		{"api_bind", c.APIBind}, {"rpc_bind", c.RPCBind}, {"internal_api_bind", c.InternalAPIBind},
	} {
		if strings.TrimSpace(b.addr) == "" {
			errs = append(errs, fmt.Errorf("%s: %w", b.key, ErrEmptyBind))
		}
	}

	if c.PollingDelta == 0 {
		errs = append(errs, fmt.Errorf("polling_delta must be > 0: %w", ErrBadPolling))
	}
	if c.PollingInterval < 0 {
		errs = append(errs, fmt.Errorf("polling_interval %s is negative: %w", c.PollingInterval, ErrBadPolling))
	} else if c.PollingInterval > 0 && c.PollingInterval < MinPollingInterval {
		// TOML reads a bare number as nanoseconds: `polling_interval = 1` would poll back to back.
		errs = append(errs, fmt.Errorf("polling_interval %s is below %s (a bare number is nanoseconds; write a duration such as \"200ms\"): %w",
			c.PollingInterval, MinPollingInterval, ErrBadPolling))
	}
	if !(c.APIRateLimit >= 0) || math.IsInf(c.APIRateLimit, 0) { // NaN fails >= too
		errs = append(errs, fmt.Errorf("api_rate_limit %v: %w", c.APIRateLimit, ErrBadLimit))
	}
	if err := c.validateHold(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateEdge()...)
	errs = append(errs, c.validateRegistration()...)
	return errors.Join(errs...)
}

// checkRPCConnect refuses a btc_rpc_connect that is not a bare host, which teosd would only
// fail to dial with a garbled address: bitcoin-cli's rpcconnect takes "host:port", a URL is
// tempting, and rust-teos takes neither.
func checkRPCConnect(host string) error {
	if _, port, err := net.SplitHostPort(host); err == nil {
		return fmt.Errorf("btc_rpc_connect %q holds a port (set btc_rpc_port = %s instead): %w", host, port, ErrBadRPCConnect)
	}
	if strings.Contains(host, "/") || strings.HasPrefix(host, "[") {
		return fmt.Errorf("btc_rpc_connect %q: %w", host, ErrBadRPCConnect)
	}
	return nil
}

// BitcoindNetwork is the chain name bitcoind reports in getblockchaininfo
// (main|test|signet|regtest); an unknown network is returned unchanged.
func (c *Config) BitcoindNetwork() string {
	if n, ok := networks[c.BTCNetwork]; ok {
		return n.chain
	}
	return c.BTCNetwork
}

// NetworkDir is <datadir>/<main|test|regtest|signet>, where the database lives.
func (c *Config) NetworkDir() string {
	return filepath.Join(c.DataDir, c.BitcoindNetwork())
}

// ConfigPath is <datadir>/teos.toml.
func (c *Config) ConfigPath() string {
	return filepath.Join(c.DataDir, FileName)
}

// BitcoindRPCPort is btc_rpc_port, or the network's default when it is 0
// (0 for an unknown network).
func (c *Config) BitcoindRPCPort() uint16 {
	if c.BTCRPCPort != 0 {
		return c.BTCRPCPort
	}
	return networks[c.BTCNetwork].port
}

// MinPollingInterval is the shortest polling_interval accepted.
const MinPollingInterval = time.Millisecond

// PollEvery is how often to poll bitcoind.
func (c *Config) PollEvery() time.Duration {
	if c.PollingInterval > 0 {
		return c.PollingInterval
	}
	return time.Duration(c.PollingDelta) * time.Second
}

// secretKeys are masked in NonDefault, as rust-teos masks them.
var secretKeys = map[string]bool{"btc_rpc_user": true, "btc_rpc_password": true, "database_url": true}

// NonDefault lists the settings that differ from Default, keyed by their
// teos.toml name ("datadir" for DataDir), for the start-up log. Credentials
// show as "***".
func (c *Config) NonDefault() []slog.Attr {
	def := Default()
	got, want := reflect.ValueOf(c).Elem(), reflect.ValueOf(&def).Elem()
	var attrs []slog.Attr
	for i := range got.NumField() {
		if got.Field(i).Equal(want.Field(i)) {
			continue
		}
		field := got.Type().Field(i)
		key, _, _ := strings.Cut(field.Tag.Get("toml"), ",")
		if key == "-" || key == "" {
			key = strings.ToLower(field.Name)
		}
		if secretKeys[key] {
			attrs = append(attrs, slog.String(key, "***"))
			continue
		}
		attrs = append(attrs, slog.Any(key, got.Field(i).Interface()))
	}
	return attrs
}

// ExpandHome replaces a leading "~" or "~/" with the user's home directory (teosd and the
// command-line clients share it).
func ExpandHome(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		// $HOME is not set for a systemd system unit without User=: rust-teos then takes the
		// home from the user database, and so does teosd.
		if home, err = userHome(); err != nil || home == "" {
			return "", fmt.Errorf("%q: %w", path, ErrNoHome)
		}
	}
	return filepath.Join(home, strings.TrimPrefix(path, "~")), nil
}

// userHome is the current user's home directory in the user database (a test hook).
var userHome = func() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", err
	}
	return u.HomeDir, nil
}
