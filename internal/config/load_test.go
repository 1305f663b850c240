package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// writeConf creates a data dir holding teos.toml with content.
func writeConf(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustLoad(t *testing.T, args ...string) (Config, []string) {
	t.Helper()
	cfg, warnings, err := Load(args, io.Discard)
	if err != nil {
		t.Fatalf("Load(%q) error: %v", args, err)
	}
	return cfg, warnings
}

// defaultsIn is Default() with the data dir moved to dir.
func defaultsIn(dir string) Config {
	c := Default()
	c.DataDir = dir
	return c
}

func TestLoadNoFileGivesDefaults(t *testing.T) {
	home := withHome(t)
	cfg, warnings := mustLoad(t)
	if want := Default(); cfg != want {
		t.Fatalf("Load() =\n%+v\nwant\n%+v", cfg, want)
	}
	if cfg.DataDir != filepath.Join(home, ".teos") {
		t.Fatalf("DataDir = %q, want ~/.teos expanded", cfg.DataDir)
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings = %q, want none", warnings)
	}
}

func TestLoadDataDirTildeExpanded(t *testing.T) {
	home := withHome(t)
	cfg, _ := mustLoad(t, "--datadir", "~/towers/one")
	if want := filepath.Join(home, "towers", "one"); cfg.DataDir != want {
		t.Fatalf("DataDir = %q, want %q", cfg.DataDir, want)
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	withHome(t)
	dir := writeConf(t, `
api_port = 1111
btc_network = "testnet"
btc_rpc_cookie = "~/.bitcoin/testnet3/.cookie"
subscription_slots = 7
polling_delta = 3
polling_interval = "250ms"
metrics_bind = "127.0.0.1:9815"
`)
	cfg, warnings := mustLoad(t, "--datadir", dir)
	want := defaultsIn(dir)
	want.APIPort = 1111
	want.BTCNetwork = "testnet"
	want.BTCRPCCookie = "~/.bitcoin/testnet3/.cookie"
	want.SubscriptionSlots = 7
	want.PollingDelta = 3
	want.PollingInterval = 250 * time.Millisecond
	want.MetricsBind = "127.0.0.1:9815"
	if cfg != want {
		t.Fatalf("Load() =\n%+v\nwant\n%+v", cfg, want)
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings = %q, want none", warnings)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	withHome(t)
	dir := writeConf(t, `
api_bind = "10.0.0.1"
api_port = 1111
rpc_bind = "10.0.0.2"
rpc_port = 2222
btc_network = "testnet"
btc_rpc_user = "fileuser"
btc_rpc_password = "filepass"
btc_rpc_cookie = "/file/cookie"
btc_rpc_connect = "filehost"
btc_rpc_port = 3333
tor_control_port = 4444
onion_hidden_service_port = 5555
polling_interval = "1s"
metrics_bind = "file:1"
`)
	cfg, _ := mustLoad(t,
		"--datadir", dir,
		"--apibind", "0.0.0.0", "--apiport", "1", "--rpcbind", "::1", "--rpcport", "2",
		"--btcnetwork", "regtest", "--btcrpcuser", "u", "--btcrpcpassword", "p",
		"--btcrpccookie", "", "--btcrpcconnect", "node", "--btcrpcport", "3",
		"--debug", "--depsdebug", "--overwritekey", "--forceupdate", "--torsupport",
		"--torcontrolport", "4", "--onionhiddenserviceport", "5",
		"--pollinginterval", "200ms", "--metricsbind", "127.0.0.1:9",
	)
	want := defaultsIn(dir)
	want.APIBind, want.APIPort, want.RPCBind, want.RPCPort = "0.0.0.0", 1, "::1", 2
	want.BTCNetwork, want.BTCRPCUser, want.BTCRPCPassword = "regtest", "u", "p"
	want.BTCRPCCookie, want.BTCRPCConnect, want.BTCRPCPort = "", "node", 3
	want.Debug, want.DepsDebug, want.OverwriteKey, want.ForceUpdate, want.TorSupport = true, true, true, true, true
	want.TorControlPort, want.OnionHiddenServicePort = 4, 5
	want.PollingInterval, want.MetricsBind = 200*time.Millisecond, "127.0.0.1:9"
	if cfg != want {
		t.Fatalf("Load() =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestUnsetFlagKeepsFileValue(t *testing.T) {
	withHome(t)
	// Each flag's default equals the Default() value; if an unset flag were
	// applied it would put that default back over the file.
	dir := writeConf(t, `
api_bind = "10.0.0.1"
api_port = 1111
btc_network = "signet"
btc_rpc_connect = "filehost"
polling_interval = "1s"
`)
	cfg, _ := mustLoad(t, "--datadir", dir, "--rpcport", "2")
	if cfg.APIBind != "10.0.0.1" || cfg.APIPort != 1111 || cfg.BTCNetwork != "signet" ||
		cfg.BTCRPCConnect != "filehost" || cfg.PollingInterval != time.Second {
		t.Fatalf("unset flags overrode the file: %+v", cfg)
	}
	if cfg.RPCPort != 2 {
		t.Fatalf("RPCPort = %d, want 2 from the flag", cfg.RPCPort)
	}
}

func TestOverwriteKeyForceUpdateFlagOnly(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "overwrite_key = true\nforce_update = true\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.OverwriteKey || cfg.ForceUpdate {
		t.Fatalf("file values took effect: overwrite_key=%v force_update=%v", cfg.OverwriteKey, cfg.ForceUpdate)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "overwrite_key") || !strings.Contains(warnings[1], "force_update") {
		t.Fatalf("warnings = %q, want one for each ignored key", warnings)
	}

	cfg, _ = mustLoad(t, "--datadir", dir, "--overwritekey", "--forceupdate")
	if !cfg.OverwriteKey || !cfg.ForceUpdate {
		t.Fatalf("flags did not take effect: overwrite_key=%v force_update=%v", cfg.OverwriteKey, cfg.ForceUpdate)
	}
}

func TestFileOrFlagBooleans(t *testing.T) {
	withHome(t)
	type bools struct{ debug, deps, tor bool }
	get := func(c Config) bools { return bools{c.Debug, c.DepsDebug, c.TorSupport} }
	for _, tc := range []struct {
		name string
		file string
		args []string
		want bools
	}{
		{"neither", "", nil, bools{}},
		{"file only", "debug = true\ndeps_debug = true\ntor_support = true\n", nil, bools{true, true, true}},
		{"flag only", "", []string{"--debug", "--depsdebug", "--torsupport"}, bools{true, true, true}},
		{"explicit false flag cannot clear file", "debug = true\ndeps_debug = true\ntor_support = true\n",
			[]string{"--debug=false", "--depsdebug=false", "--torsupport=false"}, bools{true, true, true}},
		{"mixed", "debug = true\n", []string{"--torsupport"}, bools{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConf(t, tc.file)
			cfg, _ := mustLoad(t, append([]string{"--datadir", dir}, tc.args...)...)
			if got := get(cfg); got != tc.want {
				t.Fatalf("debug/deps_debug/tor_support = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBadFileFallsBackToDefaults(t *testing.T) {
	withHome(t)
	for _, tc := range []struct{ name, content string }{
		{"syntax", "api_port = 1111\nthis is not toml\n"},
		{"wrong type", "api_port = 1111\nrpc_port = \"eighty\"\n"},
		{"port out of range", "api_port = 70000\n"},
		{"negative", "subscription_slots = -1\n"},
		{"bad duration", "polling_interval = \"soon\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConf(t, tc.content)
			cfg, warnings := mustLoad(t, "--datadir", dir, "--btcrpcuser", "u")
			want := defaultsIn(dir)
			want.BTCRPCUser = "u" // flags still apply
			if cfg != want {
				t.Fatalf("Load() =\n%+v\nwant defaults\n%+v", cfg, want)
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], "cannot parse") {
				t.Fatalf("warnings = %q, want one parse warning", warnings)
			}
		})
	}
}

// TestParseWarningHidesSecrets: the TOML parser quotes the text it stumbled on, and for an
// unquoted btc_rpc_password that is the password itself; the warning goes to the log, so a
// secret key's value is left out of it (rust-teos's parser does not quote values either). The
// warning still names the key and the line.
func TestParseWarningHidesSecrets(t *testing.T) {
	withHome(t)
	for _, tc := range []struct{ name, content, secret, key string }{
		{"unquoted password", "btc_rpc_user = \"u\"\nbtc_rpc_password = SuperSecretPassphrase\n", "SuperSecret", "btc_rpc_password"},
		{"unquoted password with digits", "btc_rpc_password = hunter2secret\n", "hunter", "btc_rpc_password"},
		{"numeric password", "btc_rpc_password = 84735628193746592837465\n", "84735628193746592837465", "btc_rpc_password"},
		{"unquoted user", "btc_rpc_user = operatorname\n", "operatorname", "btc_rpc_user"},
		{"unquoted database url", "database_url = teospassword@db\n", "teospassword", "database_url"},
		// Keys rust-teos ignores (and teos-go took before keys were matched exactly) but whose
		// value is a secret all the same.
		{"password key in capitals", "BTC_RPC_PASSWORD = SuperSecretPassphrase\n", "SuperSecret", "BTC_RPC_PASSWORD"},
		{"password in a table", "[bitcoind]\nbtc_rpc_password = SuperSecretPassphrase\n", "SuperSecret", "btc_rpc_password"},
		{"password as a dotted key", "bitcoind.Btc_Rpc_Password = SuperSecretPassphrase\n", "SuperSecret", "Btc_Rpc_Password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warnings := mustLoad(t, "--datadir", writeConf(t, tc.content))
			if len(warnings) != 1 {
				t.Fatalf("warnings = %q, want one parse warning", warnings)
			}
			w := warnings[0]
			if strings.Contains(w, tc.secret) {
				t.Fatalf("warning shows the secret %q: %s", tc.secret, w)
			}
			if !strings.Contains(w, "cannot parse") || !strings.Contains(w, tc.key) || !strings.Contains(w, "line ") {
				t.Fatalf("warning %q does not say which key and line failed to parse", w)
			}
		})
	}
	// Other keys' errors keep the parser's own words.
	_, warnings := mustLoad(t, "--datadir", writeConf(t, "btc_network = regtest\n"))
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"regtest"`) {
		t.Fatalf("warnings = %q, want the parser's message quoting the value", warnings)
	}
}

// TestKeysAreCaseSensitive: rust-teos's serde matches teos.toml keys exactly and ignores
// API_PORT or Btc_Network; the TOML decoder took them for api_port and btc_network, so a file
// ran on another network, port or data dir under teosd than under rust-teos, without a word.
// They are unknown keys now: ignored, with a warning.
func TestKeysAreCaseSensitive(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "API_PORT = 1111\nBtc_Network = \"regtest\"\nrpc_port = 2222\nRPC_PORT = 3333\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.APIPort != 9814 || cfg.BTCNetwork != "mainnet" || cfg.RPCPort != 2222 {
		t.Fatalf("api_port %d, btc_network %q, rpc_port %d; want the defaults and the exact key's 2222",
			cfg.APIPort, cfg.BTCNetwork, cfg.RPCPort)
	}
	joined := strings.Join(warnings, "\n")
	for _, key := range []string{`"API_PORT"`, `"Btc_Network"`, `"RPC_PORT"`} {
		if !strings.Contains(joined, key) {
			t.Errorf("warnings %q do not mention %s", warnings, key)
		}
	}
}

func TestUnreadableFileWarns(t *testing.T) {
	withHome(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil { // a directory cannot be read as a file
		t.Fatal(err)
	}
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg != defaultsIn(dir) || len(warnings) != 1 {
		t.Fatalf("Load() = %+v, %q; want defaults and one warning", cfg, warnings)
	}
}

func TestUnknownKeyWarns(t *testing.T) {
	withHome(t)
	dir := writeConf(t, "api_port = 1111\ndaemon = true\n[extra]\nx = 1\n")
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg.APIPort != 1111 {
		t.Fatalf("APIPort = %d, want 1111: an unknown key must not discard the file", cfg.APIPort)
	}
	joined := strings.Join(warnings, "\n")
	for _, key := range []string{`"daemon"`, `"extra.x"`} {
		if !strings.Contains(joined, key) {
			t.Errorf("warnings %q do not mention %s", warnings, key)
		}
	}
}

func TestRustTeosFileLoadsUnchanged(t *testing.T) {
	withHome(t)
	data, err := os.ReadFile(filepath.Join("testdata", "rust-teos.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeConf(t, string(data))
	cfg, warnings := mustLoad(t, "--datadir", dir)
	want := Config{
		APIBind: "0.0.0.0", APIPort: 19814,
		RPCBind: "10.0.0.1", RPCPort: 18814,
		BTCNetwork: "regtest", BTCRPCUser: "CSW", BTCRPCPassword: "NotSatoshi",
		BTCRPCConnect: "bitcoind.local", BTCRPCPort: 18443,
		DataDir: dir,
		Debug:   true, DepsDebug: true, TorSupport: true,
		OverwriteKey: false, ForceUpdate: false, // file values ignored (quirk)
		TorControlPort: 19051, OnionHiddenServicePort: 2121,
		SubscriptionSlots: 500, SubscriptionDuration: 1000, ExpiryDelta: 12, MinToSelfDelay: 42,
		PollingDelta:    5,
		InternalAPIBind: "127.0.0.2", InternalAPIPort: 50052,
		APIMaxConnections: 8192, APIHoldTimeout: 45, APIMaxConnectionsPerAddress: 64, APIMaxParkedConnections: 16384, APIMaxParkedConnectionsPerAddress: 4096, // teos-go keys: the defaults
		LndTowerMaxConnections: 1024, LndTowerMaxConnectionsPerAddress: 32,
		Registration: "open",
	}
	if cfg != want {
		t.Fatalf("Load() =\n%+v\nwant\n%+v", cfg, want)
	}
	for _, w := range warnings {
		if strings.Contains(w, "unknown key") || strings.Contains(w, "cannot") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestTemplateHoldsEveryKeyAtDefault(t *testing.T) {
	withHome(t)
	dir := writeConf(t, Template)
	cfg, warnings := mustLoad(t, "--datadir", dir)
	if cfg != defaultsIn(dir) {
		t.Fatalf("Template loads as\n%+v\nwant defaults\n%+v", cfg, defaultsIn(dir))
	}
	if len(warnings) != 0 {
		t.Fatalf("warnings = %q, want none", warnings)
	}

	var keys map[string]any
	if _, err := toml.Decode(Template, &keys); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		if _, ok := keys[key]; key != "-" && !ok {
			t.Errorf("Template lacks key %q", key)
		}
	}
}

func TestFlagNamesFollowKeys(t *testing.T) {
	// Every flag is its TOML key lower-cased without underscores.
	keyOf := map[string]string{}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		keyOf[strings.ReplaceAll(key, "_", "")] = key
	}
	fs := newFlagSet(new(Config), flagSpecs())
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		names = append(names, f.Name)
		if _, ok := keyOf[f.Name]; !ok && f.Name != "datadir" && f.Name != "importrustteos" {
			t.Errorf("flag --%s matches no TOML key", f.Name)
		}
	})
	want := []string{
		"apibind", "apiholdtimeout", "apimaxconnections", "apimaxconnectionsperaddress", "apimaxparkedconnections", "apimaxparkedconnectionsperaddress", "apiport", "apirateburst", "apiratelimit", "apitrustedproxies", "btcnetwork", "btcrpcconnect", "btcrpccookie", "btcrpcpassword", "btcrpcport",
		"btcrpcuser", "databaseurl", "datadir", "debug", "depsdebug", "forceupdate", "importrustteos", "lndtowerbind", "lndtowermaxconnections", "lndtowermaxconnectionsperaddress", "maxstoredbytes", "metricsbind", "onionhiddenserviceport",
		"overwritekey", "pollinginterval", "registration", "registrationrate", "rpcbind", "rpcport", "torcontrolport", "torsupport",
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("flags = %q\nwant %q", names, want)
	}
}

func TestLoadFlagErrors(t *testing.T) {
	withHome(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"--nope"}},
		{"port too big", []string{"--apiport", "70000"}},
		{"port not a number", []string{"--rpcport", "x"}},
		{"bad duration", []string{"--pollinginterval", "fast"}},
		{"positional argument", []string{"extra"}},
		{"file-only key has no flag", []string{"--pollingdelta", "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Load(append([]string{"--datadir", t.TempDir()}, tc.args...), io.Discard); err == nil {
				t.Fatalf("Load(%q) succeeded, want an error", tc.args)
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	withHome(t)
	for _, arg := range []string{"-h", "--help"} {
		var out strings.Builder
		_, _, err := Load([]string{arg}, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("Load(%s) err = %v, want flag.ErrHelp", arg, err)
		}
		for _, want := range []string{"Usage: teosd", "btcrpcuser", "datadir", "~/.teos"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("usage lacks %q:\n%s", want, out.String())
			}
		}
	}
}

func TestLoadVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"--apiport", "1", "--version"}} {
		if _, _, err := Load(args, io.Discard); !errors.Is(err, ErrVersion) {
			t.Fatalf("Load(%q) err = %v, want ErrVersion", args, err)
		}
	}
	if _, _, err := Load([]string{"--version=false", "--datadir", t.TempDir()}, io.Discard); err != nil {
		t.Fatalf("--version=false: %v", err)
	}
}
