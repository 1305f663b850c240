package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func TestKeyCreatedWithSafePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "client")
	k1, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, keyFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	k2, err := loadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Key.Equals(&k2.Key) {
		t.Fatal("second use made a new key")
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte("nothex"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateKey(dir); err == nil {
		t.Fatal("corrupt key accepted")
	}
}

func runCLI(t *testing.T, progress bool, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, progress)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"--datadir", dir, "frobnicate"},
		{"--datadir", dir, "get_subscription_info"}, // no tower id known
		{"--datadir", dir, "--towerid", "zz", "get_subscription_info"},
		{"--datadir", dir, "get_appointment", "abcd"},
		{"--datadir", dir, "add_appointment", "--commitment-txid", strings.Repeat("a", 64)},
		{"--datadir", dir, "add_appointment", "--file", "x.json", "--penalty", "00"},
	} {
		if code, _, stderr := runCLI(t, false, args...); code != exitUsage {
			t.Fatalf("%v: exit %d (%s), want %d", args, code, stderr, exitUsage)
		}
	}
}

// fakeTower answers register and add_appointment, signing receipts with key.
func fakeTower(t *testing.T, key *btcec.PrivateKey) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/register":
			var uid string
			_ = json.Unmarshal(req["user_id"], &uid)
			b, _ := hex.DecodeString(uid)
			var rec teos.RegistrationReceipt
			copy(rec.UserID[:], b)
			rec.AvailableSlots, rec.SubscriptionStart, rec.SubscriptionExpiry = 10, 1, 100
			_ = json.NewEncoder(w).Encode(map[string]any{"user_id": uid, "available_slots": 10, "subscription_start": 1,
				"subscription_expiry": 100, "subscription_signature": wtcrypto.SignMessage(rec.SignedBytes(), key)})
		case "/add_appointment":
			var sig string
			var appt struct{ Locator string }
			_ = json.Unmarshal(req["signature"], &sig)
			_ = json.Unmarshal(req["appointment"], &appt)
			_ = json.NewEncoder(w).Encode(map[string]any{"locator": appt.Locator, "start_block": 7,
				"signature": wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 7), key), "available_slots": 9, "subscription_expiry": 100})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func penaltyHex(t *testing.T, n int) string {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&wire.OutPoint{Index: uint32(n)}, nil, nil))
	tx.AddTxOut(wire.NewTxOut(1000, []byte{0x51}))
	var b bytes.Buffer
	if err := tx.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b.Bytes())
}

func TestRegisterThenFileWithProgress(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	dir := filepath.Join(t.TempDir(), "c")

	code, stdout, stderr := runCLI(t, false, "--datadir", dir, "--tower", srv.URL, "--towerid", towerID, "register")
	if code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	var reg map[string]any
	if err := json.Unmarshal([]byte(stdout), &reg); err != nil || reg["tower_id"] != towerID || reg["available_slots"] != float64(10) {
		t.Fatalf("register output %s (%v)", stdout, err)
	}

	var entries []map[string]any
	for i := range 5 {
		txid := chainhash.DoubleHashH([]byte{byte(i)})
		entries = append(entries, map[string]any{"commitment_txid": txid.String(), "penalty_rawtx": penaltyHex(t, i)})
	}
	file := filepath.Join(t.TempDir(), "appts.json")
	b, _ := json.Marshal(entries)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Neither --tower nor --towerid: both come from what register saved.
	code, stdout, stderr = runCLI(t, true, "--datadir", dir, "add_appointment", "--file", file)
	if code != 0 {
		t.Fatalf("add_appointment --file: %d %s", code, stderr)
	}
	var out struct {
		Accepted int
		Results  []struct {
			Locator    string `json:"locator"`
			StartBlock uint32 `json:"start_block"`
		}
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Accepted != 5 || len(out.Results) != 5 {
		t.Fatalf("output %s (%v)", stdout, err)
	}
	txid := chainhash.DoubleHashH([]byte{3})
	if out.Results[3].Locator != teos.NewLocator(txid).String() || out.Results[3].StartBlock != 7 {
		t.Fatalf("result 3: %+v", out.Results[3])
	}
	if !strings.Contains(stderr, "5/5") {
		t.Fatalf("no progress bar on stderr: %q", stderr)
	}

	// A tower that signs with another key is reported, with a non-zero exit.
	other, _ := btcec.NewPrivateKey()
	bad := fakeTower(t, other)
	code, _, stderr = runCLI(t, false, "--datadir", dir, "--tower", bad.URL, "--towerid", towerID,
		"add_appointment", "--commitment-txid", txid.String(), "--penalty", penaltyHex(t, 3))
	if code != exitFailure || !strings.Contains(stderr, "misbehaving") {
		t.Fatalf("bad receipt: exit %d, stderr %s", code, stderr)
	}
}

// A damaged data dir fails every command with a clear error and a non-zero exit, and never
// leads to a new key: that would silently lose the user's subscription.
func TestCorruptDataDir(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	srv := fakeTower(t, key)
	goodTower := `{"url": "` + srv.URL + `", "tower_id": "` + towerID + `"}`
	n := btcec.S256().N.Bytes()

	for _, tc := range []struct {
		name      string
		key       any // file content, nil for none, or dir to make it a directory
		tower     any
		wantInErr string
	}{
		{"garbage key", "not a key at all\n", nil, "user key"},
		{"short key", strings.Repeat("ab", 31) + "\n", nil, "user key"},
		{"long key", strings.Repeat("ab", 33) + "\n", nil, "user key"},
		{"empty key", "", nil, "user key"},
		{"zero key", strings.Repeat("00", 32) + "\n", nil, "user key"},
		{"key above the curve order", hex.EncodeToString(n) + "\n", nil, "user key"},
		{"key is a directory", dir{}, nil, "user key"},
		{"key missing after registering", nil, goodTower, "user key"},
		{"garbage tower.json", strings.Repeat("ab", 32) + "\n", "{not json", "tower"},
		{"tower.json is a directory", strings.Repeat("ab", 32) + "\n", dir{}, "tower"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			keyPath, towerPath := filepath.Join(d, keyFile), filepath.Join(d, towerFile)
			place(t, keyPath, tc.key)
			place(t, towerPath, tc.tower)
			before := snapshot(t, d)
			for _, args := range [][]string{
				{"--tower", srv.URL, "--towerid", towerID, "register"},
				{"--towerid", towerID, "get_subscription_info"},
				{"get_appointment", strings.Repeat("ab", 16)},
			} {
				code, stdout, stderr := runCLI(t, false, append([]string{"--datadir", d}, args...)...)
				if code != exitFailure || stdout != "" {
					t.Fatalf("%v: exit %d, stdout %q, stderr %s; want exit %d and nothing on stdout", args, code, stdout, stderr, exitFailure)
				}
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(stderr), &e); err != nil || !strings.Contains(e.Error, tc.wantInErr) {
					t.Fatalf("%v: stderr %q, want a JSON error about the %s", args, stderr, tc.wantInErr)
				}
				if after := snapshot(t, d); after != before {
					t.Fatalf("%v changed the data dir:\n%s\nwas\n%s", args, after, before)
				}
			}
		})
	}
}

type dir struct{}

// place writes content (a string) at path, makes a directory there (dir{}), or nothing (nil).
func place(t *testing.T, path string, content any) {
	t.Helper()
	var err error
	switch c := content.(type) {
	case nil:
	case dir:
		err = os.Mkdir(path, 0o700)
	case string:
		err = os.WriteFile(path, []byte(c), 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every entry of d with its content.
func snapshot(t *testing.T, d string) string {
	t.Helper()
	entries, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		content := "(dir)"
		if !e.IsDir() {
			raw, err := os.ReadFile(filepath.Join(d, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			content = string(raw)
		}
		fmt.Fprintf(&b, "%s: %q\n", e.Name(), content)
	}
	return b.String()
}

// A user who used every slot renews: the tower adds its slots to the none left, so the
// renewal has no more slots than the saved registration. That is an honest tower.
func TestRenewAfterSlotsUsed(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	var n uint32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			UserID string `json:"user_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		b, _ := hex.DecodeString(req.UserID)
		n++
		rec := teos.RegistrationReceipt{AvailableSlots: 10, SubscriptionStart: 1, SubscriptionExpiry: 100 * n}
		copy(rec.UserID[:], b)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": req.UserID, "available_slots": rec.AvailableSlots,
			"subscription_start": 1, "subscription_expiry": rec.SubscriptionExpiry,
			"subscription_signature": wtcrypto.SignMessage(rec.SignedBytes(), key)})
	}))
	t.Cleanup(srv.Close)
	dir := filepath.Join(t.TempDir(), "c")
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", srv.URL, "--towerid", towerID, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, false, "--datadir", dir, "register")
	if code != 0 {
		t.Fatalf("renewal: %d %s", code, stderr)
	}
	if !strings.Contains(stdout, `"subscription_expiry": 200`) {
		t.Fatalf("renewal output %s", stdout)
	}
}

// Runs started together on a fresh data dir all end up with the one key that was created,
// never an error from reading a key file still being written.
func TestKeyConcurrentFirstRuns(t *testing.T) {
	for round := range 30 {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(round))
		const n = 8
		keys := make([]*btcec.PrivateKey, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { keys[i], errs[i] = loadOrCreateKey(dir) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d run %d: %v", round, i, errs[i])
			}
			if !keys[i].Key.Equals(&keys[0].Key) {
				t.Fatalf("round %d: runs got different keys", round)
			}
		}
		stored, err := loadOrCreateKey(dir)
		if err != nil || !stored.Key.Equals(&keys[0].Key) {
			t.Fatalf("round %d: the stored key is not the one the runs used (%v)", round, err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("round %d: data dir holds %d files, want only %s", round, len(entries), keyFile)
		}
	}
}
