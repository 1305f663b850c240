package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// merge says how an explicitly given flag combines with the file's value.
type merge int

const (
	replace merge = iota // the flag replaces the file value
	orFile               // file OR flag (rust-teos `|=`): --debug=false cannot clear the file's true
)

// flagSpec ties a flag to the Config field it sets.
type flagSpec struct {
	name  string
	usage string
	field func(*Config) any // pointer to the field
	merge merge
}

// flagSpecs lists teosd's flags: rust-teos's long names (TOML key without
// underscores). File-only keys have no flag; --datadir is handled apart.
func flagSpecs() []flagSpec {
	return []flagSpec{
		{"apibind", "address the public HTTP API binds to", func(c *Config) any { return &c.APIBind }, replace},
		{"apiport", "public HTTP API `port`", func(c *Config) any { return &c.APIPort }, replace},
		{"rpcbind", "address the admin gRPC server binds to", func(c *Config) any { return &c.RPCBind }, replace},
		{"rpcport", "admin gRPC `port`", func(c *Config) any { return &c.RPCPort }, replace},
		{"btcnetwork", "bitcoin network: mainnet, testnet, signet or regtest", func(c *Config) any { return &c.BTCNetwork }, replace},
		{"btcrpcuser", "bitcoind RPC user (with --btcrpcpassword, or use --btcrpccookie)", func(c *Config) any { return &c.BTCRPCUser }, replace},
		{"btcrpcpassword", "bitcoind RPC password", func(c *Config) any { return &c.BTCRPCPassword }, replace},
		{"btcrpccookie", "bitcoind RPC cookie file (instead of user/password)", func(c *Config) any { return &c.BTCRPCCookie }, replace},
		{"btcrpcconnect", "bitcoind RPC host", func(c *Config) any { return &c.BTCRPCConnect }, replace},
		{"btcrpcport", "bitcoind RPC `port` (0 = network default)", func(c *Config) any { return &c.BTCRPCPort }, replace},
		{"debug", "log teos at debug level", func(c *Config) any { return &c.Debug }, orFile},
		{"depsdebug", "log third-party libraries at debug level", func(c *Config) any { return &c.DepsDebug }, orFile},
		{"overwritekey", "overwrite the tower secret key. IRREVERSIBLE: changes the tower id", func(c *Config) any { return &c.OverwriteKey }, replace},
		{"forceupdate", "run even if a pruned node is too far out of sync (appointments may be missed)", func(c *Config) any { return &c.ForceUpdate }, replace},
		{"torsupport", "also serve the API as a Tor onion service", func(c *Config) any { return &c.TorSupport }, orFile},
		{"torcontrolport", "Tor control `port`", func(c *Config) any { return &c.TorControlPort }, replace},
		{"onionhiddenserviceport", "`port` the onion service listens on", func(c *Config) any { return &c.OnionHiddenServicePort }, replace},
		{"pollinginterval", "teos-go extension: bitcoind polling period (e.g. 200ms), wins over polling_delta", func(c *Config) any { return &c.PollingInterval }, replace},
		{"databaseurl", "teos-go extension: PostgreSQL URL shared by the tower's instances (empty = bbolt file)", func(c *Config) any { return &c.DatabaseURL }, replace},
		{"metricsbind", "teos-go extension: metrics endpoint address (empty = off)", func(c *Config) any { return &c.MetricsBind }, replace},
		{"apimaxconnections", "teos-go extension: most open public API connections (0 = unlimited)", func(c *Config) any { return &c.APIMaxConnections }, replace},
		{"apiratelimit", "teos-go extension: public API requests per second per client address and endpoint (0 = off)", func(c *Config) any { return &c.APIRateLimit }, replace},
		{"apiholdtimeout", "teos-go extension: `seconds` a request is held while bitcoind or the disk has a transient fault, before 503 (0 = answer at once)", func(c *Config) any { return &c.APIHoldTimeout }, replace},
		{"apirateburst", "teos-go extension: public API request burst per client address and endpoint (0 = ceil(apiratelimit))", func(c *Config) any { return &c.APIRateBurst }, replace},
		{"apimaxconnectionsperaddress", "teos-go extension: most open public API connections from one address (0 = unlimited)", func(c *Config) any { return &c.APIMaxConnectionsPerAddress }, replace},
		{"apimaxparkedconnections", "teos-go extension: most public API connections kept waiting past their address's cap (0 = reset them at once)", func(c *Config) any { return &c.APIMaxParkedConnections }, replace},
		{"apimaxparkedconnectionsperaddress", "teos-go extension: most connections of one address kept waiting past its cap (0 = apimaxparkedconnections)", func(c *Config) any { return &c.APIMaxParkedConnectionsPerAddress }, replace},
		{"apitrustedproxies", "teos-go extension: comma-separated reverse proxy addresses/CIDRs whose X-Forwarded-For / X-Real-IP name the client", func(c *Config) any { return &c.APITrustedProxies }, replace},
		{"registration", "teos-go extension: who may register, open or allowlist (users added with teos-cli adduser)", func(c *Config) any { return &c.Registration }, replace},
		{"registrationrate", "teos-go extension: registrations per client address per minute in open mode (0 = off)", func(c *Config) any { return &c.RegistrationRate }, replace},
		{"maxstoredbytes", "teos-go extension: refuse registrations once the database holds this many bytes (0 = off)", func(c *Config) any { return &c.MaxStoredBytes }, replace},
		{"lndtowerbind", "teos-go extension: address for lnd's watchtower clients, e.g. 0.0.0.0:9911 (empty = off; teosd built from lnd/)", func(c *Config) any { return &c.LndTowerBind }, replace},
		{"lndtowermaxconnections", "teos-go extension: most open connections on lnd_tower_bind, handshakes included (0 = unlimited)", func(c *Config) any { return &c.LndTowerMaxConnections }, replace},
		{"lndtowermaxconnectionsperaddress", "teos-go extension: most open connections on lnd_tower_bind from one address (0 = unlimited)", func(c *Config) any { return &c.LndTowerMaxConnectionsPerAddress }, replace},
	}
}

// Load builds teosd's configuration from args (without the program name):
// defaults, then <datadir>/teos.toml if present, then the flags explicitly
// given. A file that cannot be read or parsed falls back to defaults, as in
// rust-teos; that and unknown keys come back as warnings. Load does not call
// Validate. -h/--help prints the usage to help (teosd: stdout, as rust-teos's clap does)
// and returns flag.ErrHelp; a command line it cannot parse is an error, nothing printed.
func Load(args []string, help io.Writer) (Config, []string, error) {
	// Parsing everything once gives --datadir before the file is read; the
	// parsed values are applied afterwards, and only for flags given.
	fromFlags := Default()
	fromFlags.DataDir = defaultDataDir
	specs := flagSpecs()
	fs := newFlagSet(&fromFlags, specs)
	addVersionFlag(fs) // not a teos.toml key
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(help, fs)
			return Config{}, nil, err
		}
		return Config{}, nil, commandLineError{fmt.Errorf("parse flags: %w", err)}
	}
	if versionRequested(fs) {
		return Config{}, nil, ErrVersion
	}
	if fs.NArg() > 0 {
		return Config{}, nil, commandLineError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	dataDir, err := ExpandHome(fromFlags.DataDir)
	if err != nil {
		return Config{}, nil, fmt.Errorf("datadir: %w", err)
	}

	cfg, warnings := readFile(filepath.Join(dataDir, FileName))
	cfg.DataDir = dataDir
	if cfg.ImportRustTeos, err = ExpandHome(fromFlags.ImportRustTeos); err != nil {
		return Config{}, nil, fmt.Errorf("importrustteos: %w", err)
	}

	// rust-teos quirk: these two come from the command line only.
	if cfg.OverwriteKey {
		warnings = append(warnings, FileName+": overwrite_key is ignored, use --overwritekey")
	}
	if cfg.ForceUpdate {
		warnings = append(warnings, FileName+": force_update is ignored, use --forceupdate")
	}
	cfg.OverwriteKey, cfg.ForceUpdate = false, false

	byName := make(map[string]flagSpec, len(specs))
	for _, s := range specs {
		byName[s.name] = s
	}
	fs.Visit(func(f *flag.Flag) {
		if s, ok := byName[f.Name]; ok {
			apply(s.field(&cfg), s.field(&fromFlags), s.merge)
		}
	})
	return cfg, warnings, nil
}

// readFile decodes path over the defaults. Only a successful decode is
// kept, so a half-parsed file never leaks into the result.
func readFile(path string) (Config, []string) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, []string{fmt.Sprintf("cannot read %s, using defaults: %v", path, err)}
	}
	decoded := cfg
	ignored, err := DecodeExact(data, &decoded)
	if err != nil {
		return cfg, []string{fmt.Sprintf("cannot parse %s, using defaults: %s", path, ParseErrorText(err))}
	}
	var warnings []string
	// rust-teos ignores unknown keys; refusing them would break its operators' files.
	for _, key := range ignored {
		warnings = append(warnings, fmt.Sprintf("%s: unknown key %q ignored", path, key.String()))
	}
	return decoded, warnings
}

func newFlagSet(into *Config, specs []flagSpec) *flag.FlagSet {
	fs := flag.NewFlagSet("teosd", flag.ContinueOnError)
	// The flag package would print each parse error with the whole usage to stderr; the
	// caller says the error once instead, and the usage is printed only when asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&into.DataDir, "datadir", into.DataDir, "data directory")
	fs.StringVar(&into.ImportRustTeos, "importrustteos", into.ImportRustTeos,
		"teos-go extension: import this rust-teos database (teos_db.sql3) into a new store, then start")
	for _, s := range specs {
		switch p := s.field(into).(type) {
		case *string:
			fs.StringVar(p, s.name, *p, s.usage)
		case *bool:
			fs.BoolVar(p, s.name, *p, s.usage)
		case *uint16:
			fs.Var((*uint16Value)(p), s.name, s.usage)
		case *uint32:
			fs.Var((*uint32Value)(p), s.name, s.usage)
		case *uint64:
			fs.Uint64Var(p, s.name, *p, s.usage)
		case *float64:
			fs.Float64Var(p, s.name, *p, s.usage)
		case *time.Duration:
			fs.DurationVar(p, s.name, *p, s.usage)
		case *AddrList:
			fs.Var(p, s.name, s.usage)
		}
	}
	return fs
}

// ErrCommandLine matches Load's errors for a command line it cannot parse, as opposed to a
// data dir it cannot use: the caller points to --help for those.
var ErrCommandLine = errors.New("command line not understood")

type commandLineError struct{ error }

func (e commandLineError) Unwrap() error      { return e.error }
func (commandLineError) Is(target error) bool { return target == ErrCommandLine }

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: teosd [flags]\n\nThe Eye of Satoshi - Lightning watchtower.\n"+
		"Settings are read from <datadir>/%s; flags override them.\n\nFlags:\n", FileName)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// apply copies a flag's value (src) into the config field (dst).
func apply(dst, src any, m merge) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *bool:
		if m == orFile {
			*d = *d || *src.(*bool)
		} else {
			*d = *src.(*bool)
		}
	case *uint16:
		*d = *src.(*uint16)
	case *uint32:
		*d = *src.(*uint32)
	case *uint64:
		*d = *src.(*uint64)
	case *float64:
		*d = *src.(*float64)
	case *time.Duration:
		*d = *src.(*time.Duration)
	case *AddrList:
		*d = *src.(*AddrList)
	}
}

// uint16Value is a flag.Value for ports, rejecting values above 65535.
type uint16Value uint16

func (v *uint16Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *uint16Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("want a number 0-65535: %w", err)
	}
	*v = uint16Value(n)
	return nil
}

// uint32Value is a flag.Value for counts that the file keeps as u32.
type uint32Value uint32

func (v *uint32Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want a number 0-4294967295: %w", err)
	}
	*v = uint32Value(n)
	return nil
}

// ParseErrorText is a teos.toml decoding error for the log. The parser quotes the text it
// stumbled on, which for an unquoted btc_rpc_password is the password itself: for a secret
// key only the key and the line are given.
func ParseErrorText(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) && holdsSecret(pe.LastKey) {
		return fmt.Sprintf("toml: line %d: the value of %s is not valid TOML (a string is written in quotes; "+
			"the parser's message is not shown, it would quote the secret)", pe.Position.Line, pe.LastKey)
	}
	return err.Error()
}

// holdsSecret reports whether the TOML key path (a.b.c) ends in a secret key's name in any
// case: such a key is unknown to rust-teos and teosd (keys are matched exactly), but its value
// is no less a secret.
func holdsSecret(key string) bool {
	return secretKeys[strings.ToLower(key[strings.LastIndex(key, ".")+1:])]
}

// DecodeExact decodes the TOML document data into the struct *v, taking a key only when it is
// a field's toml tag exactly, as rust-teos's serde does: the TOML decoder on its own also takes
// a key differing in case (API_PORT for api_port), which rust-teos ignores. It returns the keys
// it did not take, tables' keys included, in the file's order.
func DecodeExact(data []byte, v any) (ignored []toml.Key, err error) {
	var raw map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, err
	}
	taken := make(map[string]bool)
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("toml"), ",")
		p, ok := raw[key]
		if key == "" || key == "-" || !ok {
			continue
		}
		if err := md.PrimitiveDecode(p, rv.Field(i).Addr().Interface()); err != nil {
			return nil, err // names the key and its line
		}
		taken[key] = true
	}
	for _, k := range md.Keys() {
		if !taken[k[0]] {
			ignored = append(ignored, k)
		}
	}
	return ignored, nil
}
