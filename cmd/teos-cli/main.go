// Command teos-cli administers a running teosd over its admin RPC (mutual TLS), with
// rust-teos v0.2 teos-cli's commands, options and output (docs/PROTOCOL.md §11).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/msglimit"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/tlsgen"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// Exit codes are rust-teos's (structopt on clap 2), so operators' scripts keep working: 1 for
// anything that went wrong, a command line that could not be understood included.
const (
	exitFailure = 1
	exitUsage   = 1
)

// Messages other tools may match; they are rust-teos's.
const (
	msgNoConnection   = "Could not connect to tower. Is teosd running?"
	msgLocatorNotHex  = "Locator is not hex encoded"
	msgLocatorBadData = "Locator cannot be built from the given data"
	msgBadUserID      = "Provided public key does not match expected format (33-byte hex string)"
	msgShuttingDown   = "Shutting down tower"
)

const (
	defaultRPCBind = "localhost"
	defaultRPCPort = 8814
	defaultDataDir = "~/.teos"
	connectTimeout = 10 * time.Second
)

// rpcTimeout bounds a command's call (a variable for tests).
var rpcTimeout = 60 * time.Second

const usageCommands = `Commands:
  getallappointments        all appointments in the tower (watched, then responded)
  getappointments <locator> the appointments with a locator (32 hex characters)
  gettowerinfo              tower id, counts, bitcoind status, addresses (teos-go: role, front ends)
  getusers                  the ids of every registered user
  getuser <user_id>         one user's subscription and appointment UUIDs (66 hex characters)
  stop                      shut the tower down gracefully
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one teos-cli command: its argument count, an optional check of the arguments
// (run before connecting, so a typo is reported without a tower) and what it does.
type command struct {
	args  int
	check func(args []string) error
	run   func(ctx context.Context, c teosv2.PrivateTowerServicesClient, args []string, stdout io.Writer) error
	// ext, instead of run, for teos-go's admin extensions (allowlist.go).
	ext func(ctx context.Context, c teosv2.PrivateTowerExtensionsClient, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"getallappointments": {0, nil, getAllAppointments, nil},
	"getappointments":    {1, func(a []string) error { _, err := parseLocator(a[0]); return err }, getAppointments, nil},
	"gettowerinfo":       {0, nil, getTowerInfo, nil},
	"getusers":           {0, nil, getUsers, nil},
	"getuser":            {1, func(a []string) error { _, err := parseUserID(a[0]); return err }, getUser, nil},
	"stop":               {0, nil, stop, nil},
}

// cliError is a message for stderr, printed as is.
type cliError string

func (e cliError) Error() string { return string(e) }

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("teos-cli", flag.ContinueOnError)
	// The usage goes where clap 2 (rust-teos's teos-cli) puts it: stdout when asked for (exit
	// 0), stderr after an error (exit 1). Parse errors are printed here, once.
	flags.SetOutput(io.Discard)
	rpcBind := flags.String("rpcbind", "", "address the teosd admin RPC is bound to (default "+defaultRPCBind+", or rpc_bind in teos.toml)")
	rpcPort := flags.Uint("rpcport", 0, "port of the teosd admin RPC (default "+strconv.Itoa(defaultRPCPort)+", or rpc_port in teos.toml)")
	dataDir := flags.String("datadir", defaultDataDir, "data directory: teos.toml, ca.pem, client.pem, client-key.pem")
	version := flags.Bool("version", false, "print the version, then exit")
	flags.BoolVar(version, "V", false, "same as --version")
	usage := func(w io.Writer) {
		fmt.Fprint(w, "Usage: teos-cli [options] <command> [argument]\n\nThe Eye of Satoshi - CLI.\n\n"+usageCommands+usageExtensions+"\nOptions:\n")
		flags.SetOutput(w)
		flags.PrintDefaults()
		flags.SetOutput(io.Discard)
	}
	flags.Usage = func() {}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintln(stderr, "teos-cli:", err)
		usage(stderr)
		return exitUsage
	}
	if *version {
		// rust-teos's teos-cli answers -V/--version with "<name> <version>".
		fmt.Fprintf(stdout, "teos-cli %s\n", teos.Version)
		return 0
	}
	if helpRequested(flags.Args()) {
		usage(stdout)
		return 0
	}
	if flags.NArg() == 0 {
		fmt.Fprintln(stderr, "teos-cli: missing command")
		usage(stderr)
		return exitUsage
	}
	name, cmdArgs := flags.Arg(0), flags.Args()[1:]
	if name == "help" && len(cmdArgs) == 1 {
		name = cmdArgs[0] // not a command, or helpRequested would have said so
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "teos-cli: unknown command %q\n", name)
		usage(stderr)
		return exitUsage
	}
	if len(cmdArgs) != cmd.args {
		fmt.Fprintf(stderr, "teos-cli: %s takes %d argument(s), got %d\n", name, cmd.args, len(cmdArgs))
		usage(stderr)
		return exitUsage
	}
	if cmd.check != nil {
		if err := cmd.check(cmdArgs); err != nil {
			fmt.Fprintln(stderr, errorMessage(err))
			return exitFailure
		}
	}
	if *rpcPort > 65535 {
		fmt.Fprintf(stderr, "teos-cli: --rpcport %d is not a port\n", *rpcPort)
		return exitUsage
	}

	dir, err := config.ExpandHome(*dataDir)
	if err != nil {
		fmt.Fprintln(stderr, "teos-cli:", err)
		return exitFailure
	}
	addr := rpcAddress(dir, flags, *rpcBind, uint16(*rpcPort), stderr)
	tlsCfg, err := tlsgen.ClientConfig(dir)
	if err != nil {
		fmt.Fprintf(stderr, "teos-cli: %v (copy ca.pem, client.pem and client-key.pem from teosd's data dir into %s)\n", err, dir)
		return exitFailure
	}

	conn, err := connect(addr, credentials.NewTLS(tlsCfg))
	if err != nil {
		fmt.Fprintln(stderr, msgNoConnection) // rust-teos's line, which scripts may match
		var cause error
		if !errors.Is(err, context.DeadlineExceeded) { // a tower that hangs is not waited for twice
			cause = handshakeFailure(addr, tlsCfg, connectTimeout)
		}
		switch {
		case errors.As(cause, new(notTLSError)):
			fmt.Fprintf(stderr, "teos-cli: something listens at %s but does not speak TLS: %v (is it teosd's admin RPC, rpc_bind:rpc_port?)\n", addr, cause)
		case cause != nil:
			fmt.Fprintf(stderr, "teos-cli: something listens at %s but the TLS handshake failed: %v (are ca.pem, client.pem and client-key.pem in %s those of this teosd's data dir?)\n", addr, cause, dir)
		}
		return exitFailure
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if cmd.ext != nil {
		err = cmd.ext(ctx, teosv2.NewPrivateTowerExtensionsClient(conn), cmdArgs, stdout)
	} else {
		err = cmd.run(ctx, teosv2.NewPrivateTowerServicesClient(conn), cmdArgs, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, errorMessage(err))
		if name == "getallappointments" && msglimit.IsOverflow(err) {
			fmt.Fprintln(stderr, "teos-cli: the tower holds more appointments than one answer carries; getappointments <locator> lists those of one locator")
		}
		return exitFailure
	}
	return 0
}

// helpRequested reports what clap 2 answers with the help (rust-teos's teos-cli): the help
// subcommand, alone or with a command's name, and -h/--help after a command, as in
// "teos-cli getuser --help", which would otherwise be taken for a user id.
func helpRequested(args []string) bool {
	if len(args) == 0 {
		return false
	}
	if args[0] == "help" {
		if len(args) == 1 {
			return true
		}
		_, known := commands[args[1]]
		return len(args) == 2 && known
	}
	for _, a := range args[1:] {
		if a == "-h" || a == "--help" {
			return true
		}
	}
	return false
}

// rpcAddress resolves host:port: defaults, then rpc_bind/rpc_port from <dir>/teos.toml, then
// the flags given.
func rpcAddress(dir string, flags *flag.FlagSet, bind string, port uint16, stderr io.Writer) string {
	file := struct {
		RPCBind string `toml:"rpc_bind"`
		RPCPort uint16 `toml:"rpc_port"`
	}{defaultRPCBind, defaultRPCPort}
	path := filepath.Join(dir, config.FileName)
	// Other keys are teosd's: ignored, as are RPC_PORT and the like (rust-teos matches keys
	// exactly). An unreadable file falls back to defaults, as in rust-teos.
	data, err := os.ReadFile(path)
	if err == nil {
		_, err = config.DecodeExact(data, &file)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "teos-cli: cannot read %s, using defaults: %s\n", path, config.ParseErrorText(err))
		file.RPCBind, file.RPCPort = defaultRPCBind, defaultRPCPort
	}
	flags.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rpcbind":
			file.RPCBind = bind
		case "rpcport":
			file.RPCPort = port
		}
	})
	return net.JoinHostPort(file.RPCBind, strconv.Itoa(int(file.RPCPort)))
}

// connect dials the tower and waits for the TLS handshake to succeed, so an absent tower or a
// refused certificate is reported before any command runs (rust-teos connects eagerly too).
func connect(addr string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	// get_all_appointments of a big tower is far over grpc-go's default 4 MiB.
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds), msglimit.DialOption())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn.Connect()
	for {
		switch s := conn.GetState(); s {
		case connectivity.Ready:
			return conn, nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			conn.Close()
			return nil, fmt.Errorf("connect %s: %s", addr, s)
		default:
			if !conn.WaitForStateChange(ctx, s) {
				conn.Close()
				return nil, fmt.Errorf("connect %s: %w", addr, ctx.Err())
			}
		}
	}
}

// errorMessage is what the user sees for a failed command: the local message, the tower's
// status message, or the connection message if the tower went away (or refused us late, as a
// TLS 1.3 server does with a bad client certificate).
func errorMessage(err error) string {
	if e, ok := errors.AsType[cliError](err); ok {
		return string(e)
	}
	if s, ok := status.FromError(err); ok {
		if s.Code() == codes.Unavailable {
			return msgNoConnection
		}
		if s.Code() == codes.DeadlineExceeded {
			// grpc-go's own text, "context deadline exceeded", does not say whose deadline.
			return fmt.Sprintf("teos-cli: the tower did not answer within %s", rpcTimeout)
		}
		return s.Message()
	}
	return err.Error()
}

func getAllAppointments(ctx context.Context, c teosv2.PrivateTowerServicesClient, _ []string, stdout io.Writer) error {
	resp, err := c.GetAllAppointments(ctx, &emptypb.Empty{})
	if err != nil {
		return err
	}
	return printAppointments(stdout, resp.GetAppointments())
}

func getAppointments(ctx context.Context, c teosv2.PrivateTowerServicesClient, args []string, stdout io.Writer) error {
	loc, err := parseLocator(args[0])
	if err != nil {
		return err
	}
	resp, err := c.GetAppointments(ctx, &teosv2.GetAppointmentsRequest{Locator: loc[:]})
	if err != nil {
		return err
	}
	return printAppointments(stdout, resp.GetAppointments())
}

func getTowerInfo(ctx context.Context, c teosv2.PrivateTowerServicesClient, _ []string, stdout io.Writer) error {
	resp, err := c.GetTowerInfo(ctx, &emptypb.Empty{})
	if err != nil {
		return err
	}
	addrs := make([]addressJSON, len(resp.GetAddresses()))
	for i, a := range resp.GetAddresses() {
		addrs[i] = addressJSON{Type: addressType(a.GetAddressType()), Address: a.GetAddress(), Port: a.GetPort()}
	}
	return printJSON(stdout, towerInfoJSON{
		TowerID:              hex.EncodeToString(resp.GetTowerId()),
		NRegisteredUsers:     resp.GetNRegisteredUsers(),
		NWatcherAppointments: resp.GetNWatcherAppointments(),
		NResponderTrackers:   resp.GetNResponderTrackers(),
		BitcoindReachable:    resp.GetBitcoindReachable(),
		Addresses:            addrs,
		towerInfoExtJSON:     towerInfoExt(resp),
	})
}

func getUsers(ctx context.Context, c teosv2.PrivateTowerServicesClient, _ []string, stdout io.Writer) error {
	resp, err := c.GetUsers(ctx, &emptypb.Empty{})
	if err != nil {
		return err
	}
	return printJSON(stdout, usersJSON{UserIDs: hexList(resp.GetUserIds())})
}

func getUser(ctx context.Context, c teosv2.PrivateTowerServicesClient, args []string, stdout io.Writer) error {
	id, err := parseUserID(args[0])
	if err != nil {
		return err
	}
	resp, err := c.GetUser(ctx, &teosv2.GetUserRequest{UserId: id[:]})
	if err != nil {
		return err
	}
	return printJSON(stdout, userJSON{
		AvailableSlots:     resp.GetAvailableSlots(),
		SubscriptionExpiry: resp.GetSubscriptionExpiry(),
		Appointments:       hexList(resp.GetAppointments()),
	})
}

func stop(ctx context.Context, c teosv2.PrivateTowerServicesClient, _ []string, stdout io.Writer) error {
	fmt.Fprintln(stdout, msgShuttingDown)
	_, err := c.Stop(ctx, &emptypb.Empty{})
	return err
}

// parseLocator reports rust-teos's two messages: not hex, or not 16 bytes.
func parseLocator(s string) (teos.Locator, error) {
	raw, err := hex.DecodeString(s)
	if err != nil {
		return teos.Locator{}, cliError(msgLocatorNotHex)
	}
	loc, err := teos.LocatorFromBytes(raw)
	if err != nil {
		return teos.Locator{}, cliError(msgLocatorBadData)
	}
	return loc, nil
}

// parseUserID accepts what rust-teos's PublicKey::from_str does: a compressed (66 hex) or
// uncompressed (130 hex) key, in either case; the tower gets the compressed form.
func parseUserID(s string) (teos.UserID, error) {
	raw, err := hex.DecodeString(s)
	if err != nil || (len(raw) != 33 && len(raw) != 65) {
		return teos.UserID{}, cliError(msgBadUserID)
	}
	pk, err := btcec.ParsePubKey(raw)
	if err != nil {
		return teos.UserID{}, cliError(msgBadUserID)
	}
	return teos.UserIDFromPubKey(pk), nil
}

// JSON shapes of rust-teos's serde output; field order matters for byte-equal output.
type (
	appointmentJSON struct {
		Locator       string `json:"locator"`
		EncryptedBlob string `json:"encrypted_blob"`
		ToSelfDelay   uint32 `json:"to_self_delay"`
	}
	trackerJSON struct {
		DisputeTxid  string `json:"dispute_txid"`
		PenaltyTxid  string `json:"penalty_txid"`
		PenaltyRawtx string `json:"penalty_rawtx"`
	}
	towerInfoJSON struct {
		TowerID              string        `json:"tower_id"`
		NRegisteredUsers     uint32        `json:"n_registered_users"`
		NWatcherAppointments uint32        `json:"n_watcher_appointments"`
		NResponderTrackers   uint32        `json:"n_responder_trackers"`
		BitcoindReachable    bool          `json:"bitcoind_reachable"`
		Addresses            []addressJSON `json:"addresses"`
		towerInfoExtJSON                   // teos-go's keys, after rust-teos's (towerinfo.go)
	}
	addressJSON struct {
		Type    string `json:"type"`
		Address string `json:"address"`
		Port    uint32 `json:"port"`
	}
	usersJSON struct {
		UserIDs []string `json:"user_ids"`
	}
	userJSON struct {
		AvailableSlots     uint32   `json:"available_slots"`
		SubscriptionExpiry uint32   `json:"subscription_expiry"`
		Appointments       []string `json:"appointments"`
	}
)

// printAppointments prints {"appointments": [...]} as printJSON would, one entry at a time:
// a big tower's get_all_appointments answer (up to 256 MiB, twice that in hex) was otherwise
// held several times over, as hex strings, JSON and indented JSON, before the first byte
// went out.
func printAppointments(w io.Writer, data []*commonv2.AppointmentData) error {
	if len(data) == 0 {
		_, err := io.WriteString(w, "{\n  \"appointments\": []\n}\n")
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("{\n  \"appointments\": [\n")
	var entry bytes.Buffer
	enc := json.NewEncoder(&entry)
	enc.SetEscapeHTML(false)
	enc.SetIndent("    ", "  ") // the entries' depth in the document
	for i, d := range data {
		entry.Reset()
		if err := enc.Encode(appointmentEntry(d)); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		bw.WriteString("    ")
		bw.Write(bytes.TrimSuffix(entry.Bytes(), []byte("\n")))
		if i < len(data)-1 {
			bw.WriteString(",")
		}
		if _, err := bw.WriteString("\n"); err != nil {
			return err // stdout closed: stop encoding
		}
	}
	bw.WriteString("  ]\n}\n")
	return bw.Flush()
}

// appointmentEntry flattens an AppointmentData into its variant's fields (serde untagged +
// flatten in rust-teos): an appointment, a tracker, or {} if neither is set.
func appointmentEntry(d *commonv2.AppointmentData) any {
	switch {
	case d.GetAppointment() != nil:
		a := d.GetAppointment()
		return appointmentJSON{
			Locator:       hex.EncodeToString(a.GetLocator()),
			EncryptedBlob: hex.EncodeToString(a.GetEncryptedBlob()),
			ToSelfDelay:   a.GetToSelfDelay(),
		}
	case d.GetTracker() != nil:
		t := d.GetTracker()
		return trackerJSON{
			DisputeTxid:  reversedHex(t.GetDisputeTxid()),
			PenaltyTxid:  reversedHex(t.GetPenaltyTxid()),
			PenaltyRawtx: hex.EncodeToString(t.GetPenaltyRawtx()),
		}
	default:
		return struct{}{}
	}
}

// reversedHex prints a txid in display order (gRPC carries internal order).
func reversedHex(b []byte) string {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return hex.EncodeToString(r)
}

func hexList(list [][]byte) []string {
	out := make([]string, len(list))
	for i, b := range list {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

func addressType(t teosv2.NetworkAddress_AddressType) string {
	switch t {
	case teosv2.NetworkAddress_IpV4:
		return "ipv4"
	case teosv2.NetworkAddress_TorV3:
		return "torv3"
	default:
		return strings.ToLower(t.String())
	}
}

// printJSON writes v as serde_json's to_string_pretty does: 2-space indent, no HTML escaping,
// then a newline.
func printJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
