package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/tlsgen"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// fakeTower answers with fixed data and records what it was asked.
type fakeTower struct {
	teosv2.UnimplementedPrivateTowerServicesServer
	mu       sync.Mutex
	userID   []byte
	locator  []byte
	stopped  bool
	appts    []*commonv2.AppointmentData
	towerID  []byte
	knownKey []byte
	// infoExt, if set, adds teos-go's fields to get_tower_info's answer.
	infoExt func(*teosv2.GetTowerInfoResponse)
}

func (f *fakeTower) GetAllAppointments(context.Context, *emptypb.Empty) (*teosv2.GetAllAppointmentsResponse, error) {
	return &teosv2.GetAllAppointmentsResponse{Appointments: f.appts}, nil
}

func (f *fakeTower) GetAppointments(_ context.Context, req *teosv2.GetAppointmentsRequest) (*teosv2.GetAppointmentsResponse, error) {
	f.mu.Lock()
	f.locator = req.GetLocator()
	f.mu.Unlock()
	return &teosv2.GetAppointmentsResponse{}, nil
}

func (f *fakeTower) GetTowerInfo(context.Context, *emptypb.Empty) (*teosv2.GetTowerInfoResponse, error) {
	resp := &teosv2.GetTowerInfoResponse{
		TowerId: f.towerID, NRegisteredUsers: 2, NWatcherAppointments: 3, NResponderTrackers: 1, BitcoindReachable: true,
		Addresses: []*teosv2.NetworkAddress{
			{AddressType: teosv2.NetworkAddress_IpV4, Address: "127.0.0.1", Port: 9814},
			{AddressType: teosv2.NetworkAddress_TorV3, Address: "x.onion", Port: 9814},
		},
	}
	if f.infoExt != nil {
		f.infoExt(resp)
	}
	return resp, nil
}

func (f *fakeTower) GetUsers(context.Context, *emptypb.Empty) (*teosv2.GetUsersResponse, error) {
	return &teosv2.GetUsersResponse{UserIds: [][]byte{{0xaa, 0xbb}, {0xcc}}}, nil
}

func (f *fakeTower) GetUser(_ context.Context, req *teosv2.GetUserRequest) (*teosv2.GetUserResponse, error) {
	f.mu.Lock()
	f.userID = req.GetUserId()
	f.mu.Unlock()
	if !bytes.Equal(req.GetUserId(), f.knownKey) {
		return nil, status.Error(codes.NotFound, "User not found")
	}
	return &teosv2.GetUserResponse{AvailableSlots: 7, SubscriptionExpiry: 500, Appointments: [][]byte{{1, 2}, {3, 4}}}, nil
}

func (f *fakeTower) Stop(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	return &emptypb.Empty{}, nil
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// serveFake starts the fake tower with mutual TLS from a fresh data dir, and opts, and returns
// the dir and the port.
func serveFake(t *testing.T, f *fakeTower, opts ...grpc.ServerOption) (string, int) {
	t.Helper()
	return serveFakeService(t, f, opts...)
}

// serveFakeService is serveFake for any implementation of the service.
func serveFakeService(t *testing.T, f teosv2.PrivateTowerServicesServer, opts ...grpc.ServerOption) (string, int) {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsgen.Ensure(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsgen.ServerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(cfg))}, opts...)...)
	teosv2.RegisterPrivateTowerServicesServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return dir, lis.Addr().(*net.TCPAddr).Port
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func newFake(t *testing.T) *fakeTower {
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeTower{
		towerID:  seq(33, 2),
		knownKey: k.PubKey().SerializeCompressed(),
		appts: []*commonv2.AppointmentData{
			{AppointmentData: &commonv2.AppointmentData_Appointment{Appointment: &commonv2.Appointment{
				Locator: seq(16, 1), EncryptedBlob: []byte{0xab, 0xcd}, ToSelfDelay: 42}}},
			{AppointmentData: &commonv2.AppointmentData_Tracker{Tracker: &commonv2.Tracker{
				DisputeTxid: seq(32, 0), PenaltyTxid: seq(32, 0x20), PenaltyRawtx: []byte{2, 0}}}},
			{},
		},
	}
}

// The outputs are byte for byte what rust-teos's serde_json::to_string_pretty prints.
func TestOutputShapes(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)
	common := []string{"--datadir", dir, "--rpcport", strconv.Itoa(port)}
	knownHex := hex.EncodeToString(f.knownKey)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"getallappointments", []string{"getallappointments"}, `{
  "appointments": [
    {
      "locator": "0102030405060708090a0b0c0d0e0f10",
      "encrypted_blob": "abcd",
      "to_self_delay": 42
    },
    {
      "dispute_txid": "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100",
      "penalty_txid": "3f3e3d3c3b3a393837363534333231302f2e2d2c2b2a29282726252423222120",
      "penalty_rawtx": "0200"
    },
    {}
  ]
}
`},
		{"getappointments empty", []string{"getappointments", strings.Repeat("AB", 16)}, `{
  "appointments": []
}
`},
		{"gettowerinfo", []string{"gettowerinfo"}, `{
  "tower_id": "02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122",
  "n_registered_users": 2,
  "n_watcher_appointments": 3,
  "n_responder_trackers": 1,
  "bitcoind_reachable": true,
  "addresses": [
    {
      "type": "ipv4",
      "address": "127.0.0.1",
      "port": 9814
    },
    {
      "type": "torv3",
      "address": "x.onion",
      "port": 9814
    }
  ]
}
`},
		{"getusers", []string{"getusers"}, `{
  "user_ids": [
    "aabb",
    "cc"
  ]
}
`},
		{"getuser", []string{"getuser", knownHex}, `{
  "available_slots": 7,
  "subscription_expiry": 500,
  "appointments": [
    "0102",
    "0304"
  ]
}
`},
		{"stop", []string{"stop"}, "Shutting down tower\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append(common, tc.args...)...)
			if code != 0 || out != tc.want || errOut != "" {
				t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", code, out, tc.want, errOut)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.locator, bytes.Repeat([]byte{0xab}, 16)) {
		t.Errorf("upper-case locator sent as %x", f.locator)
	}
	if !f.stopped {
		t.Error("stop not called")
	}
}

func TestUncompressedUserID(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)
	pk, err := btcec.ParsePubKey(f.knownKey)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "getuser", hex.EncodeToString(pk.SerializeUncompressed()))
	if code != 0 || !strings.Contains(out, `"available_slots": 7`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(f.userID, f.knownKey) {
		t.Fatalf("tower got %x, want the compressed key %x", f.userID, f.knownKey)
	}
}

func TestErrors(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)
	common := []string{"--datadir", dir, "--rpcport", strconv.Itoa(port)}
	unknown := seq(33, 0)
	unknown[0] = 0x02
	stranger, _ := btcec.NewPrivateKey()

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stderr   string // exact, or prefix when usage follows
		isPrefix bool
	}{
		{"locator not hex", []string{"getappointments", "zz"}, 1, "Locator is not hex encoded\n", false},
		{"locator odd", []string{"getappointments", "abc"}, 1, "Locator is not hex encoded\n", false},
		{"locator short", []string{"getappointments", "abcd"}, 1, "Locator cannot be built from the given data\n", false},
		{"locator long", []string{"getappointments", strings.Repeat("00", 17)}, 1, "Locator cannot be built from the given data\n", false},
		{"user id not hex", []string{"getuser", "xyz"}, 1, "Provided public key does not match expected format (33-byte hex string)\n", false},
		{"user id short", []string{"getuser", "02abcd"}, 1, "Provided public key does not match expected format (33-byte hex string)\n", false},
		{"user id off curve", []string{"getuser", "02" + strings.Repeat("ff", 32)}, 1, "Provided public key does not match expected format (33-byte hex string)\n", false},
		{"user unknown", []string{"getuser", hex.EncodeToString(stranger.PubKey().SerializeCompressed())}, 1, "User not found\n", false},
		{"unknown command", []string{"frobnicate"}, 1, "teos-cli: unknown command \"frobnicate\"\nUsage: teos-cli", true},
		{"no command", nil, 1, "teos-cli: missing command\nUsage:", true},
		{"missing argument", []string{"getuser"}, 1, "teos-cli: getuser takes 1 argument(s), got 0\n", true},
		{"extra argument", []string{"gettowerinfo", "x"}, 1, "teos-cli: gettowerinfo takes 0 argument(s), got 1\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append(common, tc.args...)...)
			match := errOut == tc.stderr
			if tc.isPrefix {
				match = strings.HasPrefix(errOut, tc.stderr)
			}
			if code != tc.code || out != "" || !match {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tc.code, out, errOut, tc.stderr)
			}
		})
	}
}

func TestConnectionFailures(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)

	// Nothing listening.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	code, out, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(closedPort), "stop")
	if code != 1 || out != "" || errOut != "Could not connect to tower. Is teosd running?\n" {
		t.Fatalf("closed port: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A client certificate from another CA: the tower refuses the handshake.
	other := t.TempDir()
	if _, err := tlsgen.Ensure(other); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, tlsgen.CACertFile), filepath.Join(other, tlsgen.CACertFile))
	code, out, errOut = runCLI("--datadir", other, "--rpcport", strconv.Itoa(port), "gettowerinfo")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "Could not connect to tower. Is teosd running?\n") {
		t.Fatalf("foreign client certificate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Missing files: one line naming the file, no panic.
	empty := t.TempDir()
	code, out, errOut = runCLI("--datadir", empty, "--rpcport", strconv.Itoa(port), "gettowerinfo")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "client.pem") {
		t.Fatalf("no certificates: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rpc_bind/rpc_port come from <datadir>/teos.toml; flags win.
func TestConfigFile(t *testing.T) {
	f := newFake(t)
	dir, port := serveFake(t, f)
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "teos.toml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// teosd's own keys are in the same file and must not bother teos-cli.
	write(fmt.Sprintf("rpc_bind = \"127.0.0.1\"\nrpc_port = %d\nbtc_network = \"regtest\"\n", port))
	if code, _, errOut := runCLI("--datadir", dir, "getusers"); code != 0 {
		t.Fatalf("port from teos.toml: exit %d, %s", code, errOut)
	}
	write("rpc_port = 1\n")
	if code, _, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "--rpcbind", "127.0.0.1", "getusers"); code != 0 {
		t.Fatalf("flags over teos.toml: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI("--datadir", dir, "getusers"); code != 1 || errOut != "Could not connect to tower. Is teosd running?\n" {
		t.Fatalf("wrong port from teos.toml: exit %d, %s", code, errOut)
	}
	write("rpc_port = [\n")
	code, _, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "getusers")
	if code != 0 || !strings.Contains(errOut, "using defaults") {
		t.Fatalf("unparsable teos.toml: exit %d, %q", code, errOut)
	}
	// Keys are matched exactly, as by rust-teos's teos-cli: RPC_PORT is not rpc_port, so the
	// default port is dialled (nothing of ours listens there with this CA).
	write(fmt.Sprintf("rpc_bind = \"127.0.0.1\"\nRPC_PORT = %d\n", port))
	if code, _, errOut := runCLI("--datadir", dir, "getusers"); code != 1 {
		t.Fatalf("RPC_PORT taken for rpc_port: exit %d, %s", code, errOut)
	}
	// teosd's bitcoind password is in the same file: a parse error on it does not show it.
	write("btc_rpc_password = SuperSecretPassphrase\n")
	code, _, errOut = runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "getusers")
	if code != 0 || !strings.Contains(errOut, "btc_rpc_password") || strings.Contains(errOut, "SuperSecret") {
		t.Fatalf("unparsable password in teos.toml: exit %d, %q", code, errOut)
	}
}
