// Package e2e runs the built teosd binary against a real btcd regtest node.
package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/freeport"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

var teosdBin string

func TestMain(m *testing.M) {
	if os.Getenv(attackerEnv) != "" { // this binary re-executed as the one-address attacker
		attackerMain()
	}
	dir, err := os.MkdirTemp("", "teosd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	teosdBin = filepath.Join(dir, "teosd")
	args := []string{"build", "-o", teosdBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/teosd")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build teosd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t testing.TB) int {
	t.Helper()
	// freeport gives each port out once per process (a tor control port meant to stay closed
	// must not become teosd's API) and outside the kernel's source-port range (a teosd
	// restarted on its port must find it free).
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// tower is a teosd process.
type tower struct {
	t       testing.TB
	dataDir string
	args    []string
	apiURL  string
	id      teos.UserID
	bin     string // the teosd binary; empty means the one built from this tree
	// startWait bounds start's waits for the tower id and /ping; zero means 30 s.
	startWait time.Duration

	cmd  *exec.Cmd
	done chan struct{}
	// teosd's stderr, every run appended: a file rather than a pipe, so a line teosd wrote
	// before something the test then sees (a broadcast, an answer) is already there to read.
	// Through a pipe it waited for a copying goroutine of the test process, which could run
	// after the test had looked.
	logFile *os.File
	mu      sync.Mutex
	stderr  bytes.Buffer // what logs has read of logFile
	exit    error
}

// newTower prepares (but does not start) a teosd talking to node, with its own data dir and ports.
func newTower(t testing.TB, node *btcdtest.Node, extraToml string) *tower {
	t.Helper()
	dataDir := t.TempDir()
	host, port, _ := net.SplitHostPort(node.RPCHost)
	apiPort := freePort(t)
	toml := fmt.Sprintf("internal_api_port = %d\npolling_interval = \"100ms\"\n%s", freePort(t), extraToml)
	if err := os.WriteFile(filepath.Join(dataDir, "teos.toml"), []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	tw := &tower{
		t:       t,
		dataDir: dataDir,
		apiURL:  fmt.Sprintf("http://127.0.0.1:%d", apiPort),
		args: []string{
			"--datadir", dataDir, "--btcnetwork", "regtest",
			"--btcrpcuser", node.User, "--btcrpcpassword", node.Pass,
			"--btcrpcconnect", host, "--btcrpcport", port,
			"--apibind", "127.0.0.1", "--apiport", fmt.Sprint(apiPort),
			"--rpcport", fmt.Sprint(freePort(t)),
		},
	}
	logFile, err := os.OpenFile(filepath.Join(t.TempDir(), "teosd.log"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tw.logFile = logFile
	t.Cleanup(func() { logFile.Close() }) // registered first: runs after the one below
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("teosd log:\n%s", tw.logs())
		}
	})
	return tw
}

// start runs teosd and waits until it printed its tower id and answers /ping.
func (tw *tower) start(extraArgs ...string) {
	t := tw.t
	t.Helper()
	bin := teosdBin
	if tw.bin != "" {
		bin = tw.bin
	}
	cmd := exec.Command(bin, append(append([]string{}, tw.args...), extraArgs...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = tw.logFile
	btcdtest.DieWithParent(cmd, syscall.SIGTERM) // an interrupted run leaves no teosd behind
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tw.cmd, tw.done, tw.exit = cmd, make(chan struct{}), nil
	wait := cmp.Or(tw.startWait, 30*time.Second)
	idc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "tower_id: "); ok {
				idc <- id
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		tw.mu.Lock()
		tw.exit = err
		tw.mu.Unlock()
		close(tw.done)
	}()
	t.Cleanup(func() { tw.kill() })
	select {
	case id := <-idc:
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != teos.UserIDLen {
			t.Fatalf("bad tower_id line %q", id)
		}
		copy(tw.id[:], b)
	case <-tw.done:
		t.Fatalf("teosd exited before printing its tower id: %v\n%s", tw.exitErr(), tw.logs())
	case <-time.After(wait):
		t.Fatalf("teosd printed no tower id\n%s", tw.logs())
	}
	deadline := time.Now().Add(wait)
	var lastPing string
	for {
		resp, err := http.Get(tw.apiURL + "/ping")
		lastPing = fmt.Sprint(err)
		if err == nil {
			lastPing = resp.Status
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-tw.done:
			t.Fatalf("teosd exited: %v\n%s", tw.exitErr(), tw.logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("teosd API not ready (last /ping: %s)\n%s", lastPing, tw.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logs is everything teosd wrote to stderr so far, in all its runs.
func (tw *tower) logs() string {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	buf := make([]byte, 64<<10)
	for {
		n, err := tw.logFile.ReadAt(buf, int64(tw.stderr.Len()))
		tw.stderr.Write(buf[:n])
		if err != nil || n == 0 { // io.EOF: all read
			break
		}
	}
	return tw.stderr.String()
}

func (tw *tower) exitErr() error {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.exit
}

// kill stops teosd with SIGKILL, as a crash or power loss would.
func (tw *tower) kill() {
	if tw.cmd == nil || tw.cmd.Process == nil {
		return
	}
	select {
	case <-tw.done:
		return
	default:
	}
	_ = tw.cmd.Process.Kill()
	<-tw.done
}

// stop sends SIGTERM and expects a clean exit.
func (tw *tower) stop() {
	tw.t.Helper()
	_ = tw.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-tw.done:
	case <-time.After(20 * time.Second):
		tw.t.Fatalf("teosd did not stop on SIGTERM\n%s", tw.logs())
	}
	if err := tw.exitErr(); err != nil {
		tw.t.Fatalf("teosd exit: %v\n%s", err, tw.logs())
	}
}

// user is a tower client with its own key.
type user struct {
	key *btcec.PrivateKey
	id  teos.UserID
}

func newUser(t testing.TB) *user {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &user{key: k, id: teos.UserIDFromPubKey(k.PubKey())}
}

// post sends body as JSON to path and decodes the reply into out (if non-nil); it returns the
// HTTP status and the raw reply.
func post(t testing.TB, url, path string, body any, out any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: decode %s: %v", path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

type registerResp struct {
	UserID                string `json:"user_id"`
	AvailableSlots        uint32 `json:"available_slots"`
	SubscriptionStart     uint32 `json:"subscription_start"`
	SubscriptionExpiry    uint32 `json:"subscription_expiry"`
	SubscriptionSignature string `json:"subscription_signature"`
}

func (u *user) register(t testing.TB, tw *tower) registerResp {
	t.Helper()
	var r registerResp
	if code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": u.id.String()}, &r); code != 200 {
		t.Fatalf("register: %d %s", code, raw)
	}
	rec := teos.RegistrationReceipt{UserID: u.id, AvailableSlots: r.AvailableSlots, SubscriptionStart: r.SubscriptionStart, SubscriptionExpiry: r.SubscriptionExpiry}
	if !wtcrypto.VerifySignature(rec.SignedBytes(), r.SubscriptionSignature, tw.id) {
		t.Fatalf("registration receipt not signed by tower %s", tw.id)
	}
	return r
}

type addResp struct {
	Locator            string `json:"locator"`
	StartBlock         uint32 `json:"start_block"`
	Signature          string `json:"signature"`
	AvailableSlots     uint32 `json:"available_slots"`
	SubscriptionExpiry uint32 `json:"subscription_expiry"`
}

type appointmentJSON struct {
	Locator       string `json:"locator"`
	EncryptedBlob string `json:"encrypted_blob"`
	ToSelfDelay   uint32 `json:"to_self_delay"`
}

func (u *user) addRequest(a teos.Appointment) map[string]any {
	return map[string]any{
		"appointment": appointmentJSON{a.Locator.String(), hex.EncodeToString(a.EncryptedBlob), a.ToSelfDelay},
		"signature":   wtcrypto.SignMessage(a.SignedBytes(), u.key),
	}
}

// add sends an appointment and checks the receipt against the tower id.
func (u *user) add(t testing.TB, tw *tower, a teos.Appointment) addResp {
	t.Helper()
	req := u.addRequest(a)
	var r addResp
	if code, raw := post(t, tw.apiURL, "/add_appointment", req, &r); code != 200 {
		t.Fatalf("add_appointment: %d %s", code, raw)
	}
	if r.Locator != a.Locator.String() {
		t.Fatalf("receipt locator %s, want %s", r.Locator, a.Locator)
	}
	msg := teos.AppointmentReceiptBytes(req["signature"].(string), r.StartBlock)
	if !wtcrypto.VerifySignature(msg, r.Signature, tw.id) {
		t.Fatalf("appointment receipt not signed by tower %s", tw.id)
	}
	return r
}

func (u *user) get(t testing.TB, tw *tower, loc teos.Locator) (int, map[string]any) {
	t.Helper()
	req := map[string]string{"locator": loc.String(), "signature": wtcrypto.SignMessage(teos.GetAppointmentMessage(loc), u.key)}
	code, raw := post(t, tw.apiURL, "/get_appointment", req, nil)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("get_appointment: %d %q: %v", code, raw, err)
	}
	return code, out
}

type subscriptionResp struct {
	AvailableSlots     uint32   `json:"available_slots"`
	SubscriptionExpiry uint32   `json:"subscription_expiry"`
	Locators           []string `json:"locators"`
}

func (u *user) subscription(t testing.TB, tw *tower) (int, subscriptionResp, []byte) {
	t.Helper()
	var r subscriptionResp
	code, raw := post(t, tw.apiURL, "/get_subscription_info",
		map[string]string{"signature": wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, u.key)}, &r)
	return code, r, raw
}

// randomAppointment returns an appointment with a random locator and blob.
func randomAppointment(t testing.TB, blobLen int) teos.Appointment {
	t.Helper()
	var a teos.Appointment
	b := make([]byte, teos.LocatorLen+blobLen)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	copy(a.Locator[:], b)
	a.EncryptedBlob = b[teos.LocatorLen:]
	a.ToSelfDelay = 42
	return a
}

// startNode starts btcd regtest with enough blocks for teosd to start.
func startNode(t testing.TB) *btcdtest.Node {
	t.Helper()
	n := btcdtest.Start(t)
	n.Generate(t, 110)
	return n
}
