package main

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/socks5test"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// hookTower is an honest tower (every registration renews: 10 more slots, 100 more blocks)
// whose answers a test can hold (onRegister) or falsify (signer).
type hookTower struct {
	*httptest.Server
	key        *btcec.PrivateKey
	mu         sync.Mutex
	regs       uint32
	onRegister func(n uint32) // called before the n-th registration is answered
	signer     *btcec.PrivateKey
	adds       int
}

func newHookTower(t *testing.T) *hookTower {
	h := &hookTower{}
	h.key, _ = btcec.NewPrivateKey()
	h.signer = h.key
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hookTower) id() string { return teos.UserIDFromPubKey(h.key.PubKey()).String() }

func (h *hookTower) serve(w http.ResponseWriter, r *http.Request) {
	var req map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/json")
	h.mu.Lock()
	signer := h.signer
	h.mu.Unlock()
	switch r.URL.Path {
	case "/register":
		h.mu.Lock()
		h.regs++
		n, hook := h.regs, h.onRegister
		h.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		var uid string
		_ = json.Unmarshal(req["user_id"], &uid)
		b, _ := hex.DecodeString(uid)
		rec := teos.RegistrationReceipt{AvailableSlots: 10 * n, SubscriptionStart: 1, SubscriptionExpiry: 100 * n}
		copy(rec.UserID[:], b)
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": uid, "available_slots": rec.AvailableSlots,
			"subscription_start": 1, "subscription_expiry": rec.SubscriptionExpiry,
			"subscription_signature": wtcrypto.SignMessage(rec.SignedBytes(), signer)})
	case "/add_appointment":
		h.mu.Lock()
		h.adds++
		h.mu.Unlock()
		var sig string
		var appt struct{ Locator string }
		_ = json.Unmarshal(req["signature"], &sig)
		_ = json.Unmarshal(req["appointment"], &appt)
		_ = json.NewEncoder(w).Encode(map[string]any{"locator": appt.Locator, "start_block": 7,
			"signature": wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 7), signer), "available_slots": 9, "subscription_expiry": 100})
	case "/get_subscription_info":
		_ = json.NewEncoder(w).Encode(map[string]any{"available_slots": 9, "subscription_expiry": 100, "locators": []string{}})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (h *hookTower) addCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.adds
}

// savedRecord reads tower.json in dir.
func savedRecord(t *testing.T, dir string) savedTower {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, towerFile))
	if err != nil {
		t.Fatal(err)
	}
	var s savedTower
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("tower.json %s: %v", raw, err)
	}
	return s
}

// A renewal in flight while another run saves its --proxy: the renewal's receipt and the
// new proxy both end up in tower.json. Before, register wrote back the record it had read
// before its request, and the proxy saved meanwhile was lost.
func TestRegisterKeepsProxySavedMeanwhile(t *testing.T) {
	tw := newHookTower(t)
	route := socks5test.Map(testOnion, 9814, tw.Listener.Addr().String())
	p1, p2 := socks5test.Start(t, route), socks5test.Start(t, route)
	dir := t.TempDir()
	url := "http://" + testOnion + ":9814"
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", url, "--towerid", tw.id(), "--proxy", p1.Addr, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}

	entered, release := make(chan struct{}), make(chan struct{})
	tw.mu.Lock()
	tw.onRegister = func(n uint32) {
		if n == 2 {
			close(entered)
			<-release
		}
	}
	tw.mu.Unlock()
	renewed := make(chan string, 1)
	go func() {
		code, _, stderr := runCLI(t, false, "--datadir", dir, "register") // through the saved p1
		if code != 0 {
			stderr = "renewal failed: " + stderr
		} else {
			stderr = ""
		}
		renewed <- stderr
	}()
	<-entered
	// The renewal is at the tower; meanwhile another run switches to p2.
	if code, stderr := addOne(t, dir, 1, "--proxy", p2.Addr); code != 0 {
		t.Fatalf("add_appointment --proxy p2: %d %s", code, stderr)
	}
	if got := savedProxy(t, dir); got != p2.Addr {
		t.Fatalf("proxy saved %q, want %q", got, p2.Addr)
	}
	close(release)
	if msg := <-renewed; msg != "" {
		t.Fatal(msg)
	}
	s := savedRecord(t, dir)
	if s.Registration == nil || s.Registration.SubscriptionExpiry != 200 {
		t.Fatalf("renewal not saved: %+v", s.Registration)
	}
	if s.Proxy != p2.Addr {
		t.Fatalf("after the renewal the saved proxy is %q, want %q (saved by the other run meanwhile)", s.Proxy, p2.Addr)
	}
}

// Many runs updating tower.json at once lose nothing: each flags a different tower.
func TestTowerRecordUpdatesSerialized(t *testing.T) {
	dir := t.TempDir()
	if err := saveTower(dir, &savedTower{URL: "http://x", TowerID: strings.Repeat("ab", 33)}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			a := &app{}
			id := hex.EncodeToString(chainhash.DoubleHashB([]byte{byte(i)}))
			errs[i] = a.updateTower(dir, func(cur *savedTower) (*savedTower, error) {
				if cur.Misbehaving == nil {
					cur.Misbehaving = map[string]*misbehaviour{}
				}
				cur.Misbehaving[id] = &misbehaviour{Reason: "test"}
				return cur, nil
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := savedRecord(t, dir); len(s.Misbehaving) != n {
		t.Fatalf("%d of %d updates kept", len(s.Misbehaving), n)
	}
}

// A tower whose appointment receipt does not verify is flagged in tower.json with the
// evidence, and later runs send it nothing (even once it signs correctly again) until
// clear_misbehaving; queries still work. Before, the next run trusted it again.
func TestMisbehavingTowerRemembered(t *testing.T) {
	tw := newHookTower(t)
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	impostor, _ := btcec.NewPrivateKey()
	tw.mu.Lock()
	tw.signer = impostor
	tw.mu.Unlock()
	if code, stderr := addOne(t, dir, 1); code != exitFailure || !strings.Contains(stderr, "misbehaving") {
		t.Fatalf("bad receipt: exit %d, stderr %s", code, stderr)
	}
	s := savedRecord(t, dir)
	m := s.Misbehaving[tw.id()]
	txid := chainhash.DoubleHashH([]byte{1})
	if m == nil || m.URL != tw.URL || m.Proof == nil || m.Proof.Locator != teos.NewLocator(txid).String() ||
		m.Proof.RecoveredID != teos.UserIDFromPubKey(impostor.PubKey()).String() || s.Registration == nil {
		t.Fatalf("tower.json after the bad receipt: %+v (flag %+v)", s, m)
	}

	tw.mu.Lock()
	tw.signer = tw.key // it behaves again: still not trusted
	tw.mu.Unlock()
	adds := tw.addCount()
	file := filepath.Join(t.TempDir(), "a.json")
	b, _ := json.Marshal([]map[string]any{{"commitment_txid": chainhash.DoubleHashH([]byte{2}).String(), "penalty_rawtx": penaltyHex(t, 2)}})
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"add_appointment", "--commitment-txid", chainhash.DoubleHashH([]byte{2}).String(), "--penalty", penaltyHex(t, 2)},
		{"add_appointment", "--file", file},
		{"upload", "--file", file},
		{"delete", strings.Repeat("ab", 16)},
		{"register"},
		{"--towerid", tw.id(), "--tower", tw.URL, "register"},
	} {
		code, stdout, stderr := runCLI(t, false, append([]string{"--datadir", dir}, args...)...)
		if code != exitFailure || stdout != "" || !strings.Contains(stderr, "flagged misbehaving") || !strings.Contains(stderr, "clear_misbehaving") {
			t.Fatalf("%v to the flagged tower: exit %d, stdout %q, stderr %s", args, code, stdout, stderr)
		}
	}
	if n := tw.addCount(); n != adds {
		t.Fatalf("the flagged tower was sent %d appointments", n-adds)
	}
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "get_subscription_info"); code != 0 {
		t.Fatalf("get_subscription_info: %d %s", code, stderr)
	}

	code, stdout, stderr := runCLI(t, false, "--datadir", dir, "clear_misbehaving")
	if code != 0 || !strings.Contains(stdout, `"cleared": true`) {
		t.Fatalf("clear_misbehaving: %d %s %s", code, stdout, stderr)
	}
	if code, stderr := addOne(t, dir, 2); code != 0 {
		t.Fatalf("add_appointment after clear_misbehaving: %d %s", code, stderr)
	}
	if s := savedRecord(t, dir); len(s.Misbehaving) != 0 || s.Registration == nil || s.TowerID != tw.id() {
		t.Fatalf("tower.json after clearing: %+v", s)
	}
}

// A first registration whose receipt does not verify is most likely a wrong --towerid: it
// is reported, nothing is flagged, and the right id then works.
func TestWrongTowerIDNotFlagged(t *testing.T) {
	tw := newHookTower(t)
	other, _ := btcec.NewPrivateKey()
	wrong := teos.UserIDFromPubKey(other.PubKey()).String()
	dir := t.TempDir()
	code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", wrong, "register")
	if code != exitFailure || !strings.Contains(stderr, "misbehaving") || !strings.Contains(stderr, "is the tower id right?") {
		t.Fatalf("register with a wrong id: %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, towerFile)); !os.IsNotExist(err) {
		t.Fatalf("tower.json written after a first registration failed: %v", err)
	}
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register with the right id: %d %s", code, stderr)
	}
}
