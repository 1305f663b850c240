package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

func userKey(t testing.TB) *btcec.PrivateKey {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestClientLibrary drives teosd through pkg/client: a real breach's appointment is answered
// with dispute_responded once the commitment is mined, SendMany spreads 200 appointments over
// two towers, and a client holding the wrong tower id flags the receipt.
func TestClientLibrary(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw1, tw2 := newTower(t, node, ""), newTower(t, node, "")
	tw1.start()
	tw2.start()
	ctx := t.Context()
	key := userKey(t)
	opts := []client.Option{client.WithRetry(3, 50*time.Millisecond)}
	cl1, cl2 := client.New(tw1.apiURL, tw1.id, key, opts...), client.New(tw2.apiURL, tw2.id, key, opts...)
	for _, cl := range []*client.Tower{cl1, cl2} {
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if _, err := cl.Register(ctx); err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	renewed, err := cl1.Register(ctx) // the renewal check passes on a real tower
	if err != nil {
		t.Fatalf("renewal: %v", err)
	}

	b := node.NewBreach(t)
	appt, err := client.NewAppointment(b.Commitment.TxHash(), b.Penalty, btcdtest.ToSelfDelay)
	if err != nil {
		t.Fatal(err)
	}
	if appt.Locator != locatorOf(b) {
		t.Fatalf("locator %s, want %s", appt.Locator, locatorOf(b))
	}
	rec, err := cl1.AddAppointment(ctx, appt)
	if err != nil {
		t.Fatalf("AddAppointment: %v", err)
	}
	if rec.AvailableSlots != renewed.AvailableSlots-1 {
		t.Fatalf("receipt slots %d, want %d", rec.AvailableSlots, renewed.AvailableSlots-1)
	}
	if st, err := cl1.GetAppointment(ctx, appt.Locator); err != nil || st.Status != client.StatusBeingWatched {
		t.Fatalf("GetAppointment before the breach: %+v %v", st, err)
	}

	c.send(t, b.Commitment)
	c.mine(t)
	var st *client.AppointmentState
	waitFor(t, "dispute_responded", func() bool {
		st, err = cl1.GetAppointment(ctx, appt.Locator)
		return err == nil && st.Status == client.StatusDisputeResponded
	})
	if st.Tracker == nil || st.Tracker.DisputeTxID != b.Commitment.TxHash().String() ||
		st.Tracker.PenaltyTxID != b.Penalty.TxHash().String() || !bytes.Equal(st.Tracker.PenaltyRawTx, txBytes(t, b.Penalty)) {
		t.Fatalf("tracker %+v", st.Tracker)
	}
	_, err = cl2.GetAppointment(ctx, appt.Locator)
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != teos.ErrCodeAppointmentNotFound {
		t.Fatalf("GetAppointment on the other tower = %v, want not found", err)
	}

	// With teos-go's batch extension SendMany goes through POST /add_appointments, without it
	// through single requests; either way every receipt is checked.
	if info, err := cl1.Info(ctx); err == nil {
		if info.TowerID != tw1.id || !info.HasExtension(client.ExtAddAppointments) {
			t.Fatalf("/info %+v, want tower %s with %s", info, tw1.id, client.ExtAddAppointments)
		}
		found, err := client.Discover(ctx, tw1.apiURL, key)
		if err != nil || found.ID() != tw1.id {
			t.Fatalf("Discover: %v, %v", found, err)
		}
		t.Log("teosd has the batch extension")
	} else if !errors.As(err, &apiErr) || (apiErr.HTTPStatus != 404 && apiErr.HTTPStatus != 405) {
		t.Fatalf("/info: %v", err)
	} else {
		t.Log("teosd has no batch extension: single requests")
	}
	appts := make([]teos.Appointment, 100)
	for i := range appts {
		appts[i] = randomAppointment(t, 200)
	}
	done := 0
	res := client.SendMany(ctx, []*client.Tower{cl1, cl2}, appts, client.SendOptions{Concurrency: 16,
		Progress: func(d, _ int) { done = d }})
	if len(res) != 200 || done != 200 {
		t.Fatalf("%d results, progress %d", len(res), done)
	}
	for i, r := range res {
		if r.Err != nil || r.Receipt == nil || r.Receipt.Locator != appts[i%100].Locator {
			t.Fatalf("result %d (%s): %v", i, r.Tower.URL(), r.Err)
		}
	}
	for _, tc := range []struct {
		cl   *client.Tower
		want int
	}{{cl1, 101}, {cl2, 100}} {
		info, err := tc.cl.GetSubscriptionInfo(ctx)
		if err != nil || len(info.Locators) != tc.want {
			t.Fatalf("GetSubscriptionInfo: %v, %d locators, want %d", err, len(info.Locators), tc.want)
		}
	}

	// tw2's receipts do not verify against tw1's id.
	impostor := client.New(tw2.apiURL, tw1.id, userKey(t))
	if _, err := impostor.Register(ctx); !errors.Is(err, client.ErrMisbehaving) {
		t.Fatalf("Register with the wrong tower id = %v, want ErrMisbehaving", err)
	}
	tw1.stop()
	tw2.stop()
}

// teosClientBin builds teos-client once per test binary, next to teosd (TestMain removes that dir).
var teosClientBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(teosdBin), "teos-client")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/teos-client")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build teos-client: %w\n%s", err, out)
	}
	return bin, nil
})

// clientCLI runs teos-client for one user (its data dir) against one tower.
type clientCLI struct {
	t       testing.TB
	bin     string
	dataDir string
	url     string
}

func newClientCLI(t testing.TB, tw *tower) *clientCLI {
	t.Helper()
	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	return &clientCLI{t: t, bin: bin, dataDir: filepath.Join(t.TempDir(), "client"), url: tw.apiURL}
}

// run runs teos-client and decodes the JSON it prints; a non-zero exit fails the test.
func (c *clientCLI) run(args ...string) map[string]any {
	c.t.Helper()
	cmd := exec.CommandContext(c.t.Context(), c.bin, append([]string{"--datadir", c.dataDir, "--tower", c.url}, args...)...)
	btcdtest.DieWithParent(cmd, syscall.SIGKILL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("teos-client %v: %v\n%s", args, err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		c.t.Fatalf("teos-client %v printed %q: %v", args, out, err)
	}
	return got
}

// TestClientCLI runs the teos-client binary: register, add_appointment for a real breach,
// get_appointment, checking the JSON each prints.
func TestClientCLI(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	alice := newClientCLI(t, tw)
	cli := alice.run

	reg := cli("--towerid", tw.id.String(), "register")
	if reg["tower_id"] != tw.id.String() || reg["available_slots"] == nil || reg["subscription_signature"] == nil {
		t.Fatalf("register printed %v", reg)
	}
	b := node.NewBreach(t)
	// The tower id saved by register is used from here on.
	rec := cli("add_appointment", "--commitment-txid", b.Commitment.TxHash().String(),
		"--penalty", hex.EncodeToString(txBytes(t, b.Penalty)), "--to-self-delay", "144")
	if rec["locator"] != locatorOf(b).String() || rec["signature"] == nil || rec["start_block"] == nil {
		t.Fatalf("add_appointment printed %v", rec)
	}
	got := cli("get_appointment", locatorOf(b).String())
	appt, _ := got["appointment"].(map[string]any)
	if got["status"] != "being_watched" || appt["locator"] != locatorOf(b).String() || appt["to_self_delay"] != float64(144) {
		t.Fatalf("get_appointment printed %v", got)
	}
	sub := cli("get_subscription_info")
	if locs, _ := sub["locators"].([]any); len(locs) != 1 || locs[0] != locatorOf(b).String() {
		t.Fatalf("get_subscription_info printed %v", sub)
	}

	// register --discover takes the id from GET /info, when teosd has the extension.
	if resp, err := http.Get(tw.apiURL + "/info"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			alice.dataDir = filepath.Join(t.TempDir(), "discovered")
			if reg := cli("register", "--discover"); reg["tower_id"] != tw.id.String() {
				t.Fatalf("register --discover printed %v", reg)
			}
		}
	}
	tw.stop()
}

// TestClientBatch10k uploads 10,000 appointments for one user through SendMany and the batch
// extension, one of them a real breach's; every receipt is verified, the breach is caught,
// and the others stay watched. Then it measures one client's upload rate through single
// requests against batches, on the same tower.
func TestClientBatch10k(t *testing.T) {
	const total = 10_000
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, fmt.Sprintf("subscription_slots = %d\n", total))
	tw.start()
	ctx := t.Context()
	cl := client.New(tw.apiURL, tw.id, userKey(t))
	if _, err := cl.Register(ctx); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if info, err := cl.Info(ctx); err != nil || !info.HasExtension(client.ExtAddAppointments) {
		t.Fatalf("/info: %+v %v, want the batch extension", info, err)
	}

	b := node.NewBreach(t)
	appts := make([]teos.Appointment, total)
	const breachAt = 6_789
	for i := range appts {
		appts[i] = randomAppointment(t, 400) // about a real penalty's size
	}
	appts[breachAt] = breachAppointment(t, b)
	// Two batches in flight: the client signs and checks one while the tower stores the other.
	// More would only queue at the tower, and under -race a queued batch can outlast teosd's
	// 30 s write timeout.
	begin := time.Now()
	res := client.SendMany(ctx, []*client.Tower{cl}, appts, client.SendOptions{Concurrency: 2})
	elapsed := time.Since(begin)
	if len(res) != total {
		t.Fatalf("%d results, want %d", len(res), total)
	}
	slotsLeft := map[uint32]bool{}
	for i, r := range res {
		if r.Err != nil || r.Receipt == nil || r.Receipt.Locator != appts[i].Locator {
			t.Fatalf("appointment %d: %+v %v", i, r.Receipt, r.Err)
		}
		slotsLeft[r.Receipt.AvailableSlots] = true
	}
	if len(slotsLeft) != total || !slotsLeft[0] {
		t.Fatalf("receipts carry %d distinct slot counts (0 among them: %v), want %d down to 0", len(slotsLeft), slotsLeft[0], total)
	}
	t.Logf("%d appointments uploaded and verified in %v", total, elapsed.Round(time.Millisecond))
	info, err := cl.GetSubscriptionInfo(ctx)
	if err != nil {
		t.Fatalf("GetSubscriptionInfo: %v", err)
	}
	if len(info.Locators) != total || info.AvailableSlots != 0 {
		t.Fatalf("GetSubscriptionInfo: %d locators, %d slots left, want %d and 0", len(info.Locators), info.AvailableSlots, total)
	}

	c.send(t, b.Commitment)
	c.mine(t)
	c.waitInMempool(t, b.Penalty.TxHash(), time.Now())
	if block, _ := c.mine(t); !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	var st *client.AppointmentState
	waitFor(t, "dispute_responded", func() bool {
		st, err = cl.GetAppointment(ctx, appts[breachAt].Locator)
		return err == nil && st.Status == client.StatusDisputeResponded
	})
	if st.Tracker == nil || st.Tracker.PenaltyTxID != b.Penalty.TxHash().String() {
		t.Fatalf("tracker %+v", st.Tracker)
	}
	for _, i := range []int{0, 1, breachAt - 1, breachAt + 1, total - 1} {
		st, err := cl.GetAppointment(ctx, appts[i].Locator)
		if err != nil || st.Status != client.StatusBeingWatched {
			t.Fatalf("appointment %d: %+v %v, want being_watched", i, st, err)
		}
	}
	// The tracker keeps its slot until the penalty is irrevocably resolved.
	if info, err = cl.GetSubscriptionInfo(ctx); err != nil {
		t.Fatalf("GetSubscriptionInfo after the breach: %v", err)
	}
	if len(info.Locators) != total {
		t.Fatalf("%d locators after the breach, want %d", len(info.Locators), total)
	}

	// Under -race every signature costs ten times more and the rates mean little: keep it short.
	rateN := 2_000
	if raceEnabled {
		rateN = 300
	}
	measureUploadRates(t, tw, rateN)
	tw.stop()
}

// measureUploadRates logs how fast one client uploads n appointments through sequential
// single requests and then through sequential batches, each on one connection, as two fresh
// users of tw. It asserts only that every receipt verified: the numbers are for reading.
func measureUploadRates(t *testing.T, tw *tower, n int) {
	t.Helper()
	ctx := t.Context()
	upload := func(batch bool) float64 {
		t.Helper()
		// MaxConnsPerHost 1: the whole upload goes over one connection.
		httpc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		defer httpc.CloseIdleConnections()
		cl := client.New(tw.apiURL, tw.id, userKey(t), client.WithHTTPClient(httpc))
		if _, err := cl.Register(ctx); err != nil {
			t.Fatalf("Register: %v", err)
		}
		if _, err := cl.Info(ctx); err != nil { // warms the connection and the extension probe
			t.Fatalf("Info: %v", err)
		}
		appts := make([]teos.Appointment, n)
		for i := range appts {
			appts[i] = randomAppointment(t, 400)
		}
		begin := time.Now()
		if batch {
			for i, r := range cl.AddAppointments(ctx, appts, client.SendOptions{Concurrency: 1}) {
				if r.Err != nil {
					t.Fatalf("batch item %d: %v", i, r.Err)
				}
			}
		} else {
			for i, a := range appts {
				if _, err := cl.AddAppointment(ctx, a); err != nil {
					t.Fatalf("single %d: %v", i, err)
				}
			}
		}
		return float64(n) / time.Since(begin).Seconds()
	}
	singles, batches := upload(false), upload(true)
	t.Logf("one client, %d appointments each way (race detector on: %v):", n, raceEnabled)
	t.Logf("  single requests: %.0f appointments/s", singles)
	t.Logf("  batch endpoint:  %.0f appointments/s (%.1fx)", batches, batches/singles)
}
