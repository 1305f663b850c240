package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
