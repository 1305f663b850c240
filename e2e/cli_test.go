package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/tlsgen"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

const msgCLINoConnection = "Could not connect to tower. Is teosd running?\n"

// teosCLIBin builds teos-cli once per test binary, next to teosd (TestMain removes that dir).
var teosCLIBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(teosdBin), "teos-cli")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/teos-cli")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build teos-cli: %w\n%s", err, out)
	}
	return bin, nil
})

// cliResult is one teos-cli run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLIIn runs teos-cli with dataDir and extra global options before args.
func runCLIIn(t testing.TB, dataDir string, args ...string) cliResult {
	t.Helper()
	bin, err := teosCLIBin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--datadir", dataDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("teos-cli %v timed out", args)
	}
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("teos-cli %v: %v", args, err)
	}
	return cliResult{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
}

// cliRPCPort is the --rpcport newTower gave teosd.
func (tw *tower) cliRPCPort() string {
	i := slices.Index(tw.args, "--rpcport")
	return tw.args[i+1]
}

// cli runs teos-cli against tw with tw's data dir.
func (tw *tower) cli(t testing.TB, args ...string) cliResult {
	t.Helper()
	return runCLIIn(t, tw.dataDir, append([]string{"--rpcport", tw.cliRPCPort()}, args...)...)
}

// cliOK runs a command that must succeed and decodes its JSON output into out.
func (tw *tower) cliOK(t testing.TB, out any, args ...string) string {
	t.Helper()
	r := tw.cli(t, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("teos-cli %v: exit %d, stderr %q\n%s", args, r.code, r.stderr, tw.logs())
	}
	if out != nil {
		if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
			t.Fatalf("teos-cli %v: %v\n%s", args, err, r.stdout)
		}
		cliCheckPretty(t, r.stdout)
	}
	return r.stdout
}

// cliCheckPretty fails unless s is JSON indented with two spaces, plus a newline.
func cliCheckPretty(t testing.TB, s string) {
	t.Helper()
	var compact, pretty bytes.Buffer
	if err := json.Compact(&compact, []byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&pretty, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	if s != pretty.String()+"\n" {
		t.Fatalf("output is not 2-space pretty JSON:\n%s", s)
	}
}

func wantCLIError(t testing.TB, r cliResult, stderr string) {
	t.Helper()
	if r.code != 1 || r.stdout != "" || r.stderr != stderr {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and stderr %q", r.code, r.stdout, r.stderr, stderr)
	}
}

type cliTowerInfo struct {
	TowerID              string `json:"tower_id"`
	NRegisteredUsers     uint32 `json:"n_registered_users"`
	NWatcherAppointments uint32 `json:"n_watcher_appointments"`
	NResponderTrackers   uint32 `json:"n_responder_trackers"`
	BitcoindReachable    bool   `json:"bitcoind_reachable"`
	Addresses            []struct {
		Type    string `json:"type"`
		Address string `json:"address"`
		Port    uint32 `json:"port"`
	} `json:"addresses"`
	// teos-go's keys.
	Role      string            `json:"role"`
	Instance  *string           `json:"instance"`
	Leader    *string           `json:"leader"`
	FrontEnds []json.RawMessage `json:"front_ends"`
}

type cliAppointments struct {
	Appointments []json.RawMessage `json:"appointments"`
}

type cliUser struct {
	AvailableSlots     uint32   `json:"available_slots"`
	SubscriptionExpiry uint32   `json:"subscription_expiry"`
	Appointments       []string `json:"appointments"`
}

// cliAppointmentText is an appointment as teos-cli prints it inside the appointments list.
func cliAppointmentText(a teos.Appointment) string {
	return fmt.Sprintf("{\n      \"locator\": %q,\n      \"encrypted_blob\": %q,\n      \"to_self_delay\": %d\n    }",
		a.Locator.String(), hex.EncodeToString(a.EncryptedBlob), a.ToSelfDelay)
}

// cliRawTexts returns the raw elements as strings, sorted, for order-free comparison.
func cliRawTexts(list []json.RawMessage) []string {
	out := make([]string, len(list))
	for i, r := range list {
		out[i] = string(r)
	}
	slices.Sort(out)
	return out
}

func cliSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestCLI drives every teos-cli command against a real teosd on btcd with known state: two
// users, three watched appointments (two sharing a locator) and one answered breach. It checks
// the mTLS refusals, the local parse errors, and that `teos-cli stop` stops teosd cleanly
// with all data found again after a restart.
func TestCLI(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	apiURL, err := url.Parse(tw.apiURL)
	if err != nil {
		t.Fatal(err)
	}

	alice, bob := newUser(t), newUser(t)
	aliceReg := alice.register(t, tw)
	bob.register(t, tw)
	shared := randomAppointment(t, 40)
	alice.add(t, tw, shared)
	bobsCopy := shared
	bobsCopy.EncryptedBlob = append([]byte{0xee}, shared.EncryptedBlob...)
	bob.add(t, tw, bobsCopy)

	breach := node.NewBreach(t)
	disputeTxid := breach.Commitment.TxHash()
	var penalty bytes.Buffer
	if err := breach.Penalty.Serialize(&penalty); err != nil {
		t.Fatal(err)
	}
	triggered := teos.Appointment{
		Locator:       teos.NewLocator(disputeTxid),
		EncryptedBlob: wtcrypto.Encrypt(penalty.Bytes(), disputeTxid),
		ToSelfDelay:   42,
	}
	alice.add(t, tw, triggered)

	var info cliTowerInfo
	tw.cliOK(t, &info, "gettowerinfo")
	if info.TowerID != tw.id.String() || info.NRegisteredUsers != 2 || info.NWatcherAppointments != 3 ||
		info.NResponderTrackers != 0 || !info.BitcoindReachable || len(info.Addresses) != 1 ||
		info.Addresses[0].Type != "ipv4" || info.Addresses[0].Address != "127.0.0.1" ||
		fmt.Sprint(info.Addresses[0].Port) != apiURL.Port() ||
		info.Role != "standalone" || info.Instance != nil || info.Leader != nil || info.FrontEnds == nil || len(info.FrontEnds) != 0 {
		t.Fatalf("gettowerinfo before the breach: %+v", info)
	}

	// The breach: the tower answers it and the appointment becomes a tracker.
	if _, err := node.Client(t).SendRawTransaction(t.Context(), breach.Commitment); err != nil {
		t.Fatal(err)
	}
	node.Generate(t, 1)
	waitFor(t, "the breach answered", func() bool {
		var info cliTowerInfo
		tw.cliOK(t, &info, "gettowerinfo")
		return info.NResponderTrackers == 1 && info.NWatcherAppointments == 2
	})

	trackerText := fmt.Sprintf("{\n      \"dispute_txid\": %q,\n      \"penalty_txid\": %q,\n      \"penalty_rawtx\": %q\n    }",
		disputeTxid.String(), breach.Penalty.TxHash().String(), hex.EncodeToString(penalty.Bytes()))
	var all cliAppointments
	allOut := tw.cliOK(t, &all, "getallappointments")
	if len(all.Appointments) != 3 || string(all.Appointments[2]) != trackerText ||
		!slices.Equal(cliRawTexts(all.Appointments[:2]), cliSorted(cliAppointmentText(shared), cliAppointmentText(bobsCopy))) {
		t.Fatalf("getallappointments:\n%s\nwant the two watched appointments then\n%s", allOut, trackerText)
	}

	var byLoc cliAppointments
	tw.cliOK(t, &byLoc, "getappointments", shared.Locator.String())
	if !slices.Equal(cliRawTexts(byLoc.Appointments), cliSorted(cliAppointmentText(shared), cliAppointmentText(bobsCopy))) {
		t.Fatalf("getappointments %s: %s", shared.Locator, byLoc.Appointments)
	}
	// Upper-case hex is accepted, as rust-teos's hex decoding does.
	tw.cliOK(t, &byLoc, "getappointments", strings.ToUpper(triggered.Locator.String()))
	if len(byLoc.Appointments) != 1 || string(byLoc.Appointments[0]) != trackerText {
		t.Fatalf("getappointments of the breach: %s", byLoc.Appointments)
	}
	var unknown teos.Locator
	if out := tw.cliOK(t, &byLoc, "getappointments", unknown.String()); out != "{\n  \"appointments\": []\n}\n" {
		t.Fatalf("getappointments of an unknown locator: %q", out)
	}

	var users struct {
		UserIDs []string `json:"user_ids"`
	}
	tw.cliOK(t, &users, "getusers")
	if !slices.Equal(cliSorted(users.UserIDs...), cliSorted(alice.id.String(), bob.id.String())) {
		t.Fatalf("getusers: %v", users.UserIDs)
	}

	var u cliUser
	tw.cliOK(t, &u, "getuser", alice.id.String())
	wantUUIDs := cliSorted(teos.NewUUID(shared.Locator, alice.id).String(), teos.NewUUID(triggered.Locator, alice.id).String())
	if u.AvailableSlots != aliceReg.AvailableSlots-2 || u.SubscriptionExpiry != aliceReg.SubscriptionExpiry ||
		!slices.Equal(cliSorted(u.Appointments...), wantUUIDs) {
		t.Fatalf("getuser alice: %+v, want %d slots, expiry %d, UUIDs %v", u, aliceReg.AvailableSlots-2, aliceReg.SubscriptionExpiry, wantUUIDs)
	}

	// Errors: local parse errors and the tower's status message, exit 1.
	wantCLIError(t, tw.cli(t, "getappointments", "not-hex"), "Locator is not hex encoded\n")
	wantCLIError(t, tw.cli(t, "getappointments", "abcd"), "Locator cannot be built from the given data\n")
	wantCLIError(t, tw.cli(t, "getuser", "02abcd"), "Provided public key does not match expected format (33-byte hex string)\n")
	wantCLIError(t, tw.cli(t, "getuser", newUser(t).id.String()), "User not found\n")

	t.Run("mtls", func(t *testing.T) { checkCLIRefusals(t, tw) })

	// stop: teosd drains and exits 0; a restart finds everything.
	infoBefore := tw.cliOK(t, nil, "gettowerinfo")
	r := tw.cli(t, "stop")
	if r.code != 0 || r.stdout != "Shutting down tower\n" || r.stderr != "" {
		t.Fatalf("stop: %+v", r)
	}
	select {
	case <-tw.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("teosd still running after teos-cli stop\n%s", tw.logs())
	}
	if err := tw.exitErr(); err != nil {
		t.Fatalf("teosd exit after stop: %v\n%s", err, tw.logs())
	}
	wantCLIError(t, tw.cli(t, "gettowerinfo"), msgCLINoConnection)

	tw.start()
	if got := tw.cliOK(t, nil, "gettowerinfo"); got != infoBefore {
		t.Fatalf("gettowerinfo after restart:\n%s\nbefore:\n%s", got, infoBefore)
	}
	var again cliAppointments
	tw.cliOK(t, &again, "getallappointments")
	if !slices.Equal(cliRawTexts(again.Appointments), cliRawTexts(all.Appointments)) {
		t.Fatalf("appointments after restart:\n%s\nbefore:\n%s", again.Appointments, allOut)
	}
	tw.stop()
}

// checkCLIRefusals checks the admin RPC's mutual TLS from outside: a copy of the client files
// works from another directory (with teos.toml giving the port), a client certificate from
// another CA and no client certificate are refused, and missing files give a one-line error.
func checkCLIRefusals(t *testing.T, tw *tower) {
	copyTo := func(dir string, names ...string) {
		t.Helper()
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(tw.dataDir, n))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	remote := t.TempDir()
	copyTo(remote, tlsgen.CACertFile, tlsgen.ClientCertFile, tlsgen.ClientKeyFile)
	toml := fmt.Sprintf("rpc_bind = \"127.0.0.1\"\nrpc_port = %s\n", tw.cliRPCPort())
	if err := os.WriteFile(filepath.Join(remote, "teos.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLIIn(t, remote, "getusers"); r.code != 0 || !strings.Contains(r.stdout, "user_ids") {
		t.Fatalf("copied client files: %+v", r)
	}

	// A client identity from another CA, trusting the right server.
	foreign := t.TempDir()
	if _, err := tlsgen.Ensure(foreign); err != nil {
		t.Fatal(err)
	}
	copyTo(foreign, tlsgen.CACertFile)
	// rust-teos's line, then teos-go's saying the tower refused the certificate.
	r := runCLIIn(t, foreign, "--rpcport", tw.cliRPCPort(), "getusers")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, msgCLINoConnection) ||
		!strings.Contains(r.stderr, "TLS handshake failed: remote error: tls:") || strings.Count(r.stderr, "\n") != 2 {
		t.Fatalf("foreign client identity: %+v", r)
	}

	// No client certificate at all.
	caPEM, err := os.ReadFile(filepath.Join(tw.dataDir, tlsgen.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: tlsgen.ServerName})
	conn, err := grpc.NewClient("127.0.0.1:"+tw.cliRPCPort(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = teosv2.NewPrivateTowerServicesClient(conn).GetUsers(t.Context(), &emptypb.Empty{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("get_users without a client certificate: %v", err)
	}

	// Missing files: a clear one-line error, no panic.
	r = runCLIIn(t, t.TempDir(), "--rpcport", tw.cliRPCPort(), "getusers")
	if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "client.pem") {
		t.Fatalf("no certificate files: %+v", r)
	}
}
