package main

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// moodyTower registers honestly and answers every add (single, batch or streamed) as its
// mode says: "ok", "stopping" (503/7, as teosd while it stops), "refuse" (400/35), "expired"
// (401/7), or "slow" (no answer for a second).
type moodyTower struct {
	*httptest.Server
	key  *btcec.PrivateKey
	mode atomic.Value
}

func newMoodyTower(t *testing.T) *moodyTower {
	m := &moodyTower{}
	m.key, _ = btcec.NewPrivateKey()
	m.mode.Store("ok")
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	return m
}

func (m *moodyTower) id() string { return teos.UserIDFromPubKey(m.key.PubKey()).String() }

func (m *moodyTower) serve(w http.ResponseWriter, r *http.Request) {
	var req map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/json")
	answer := func(status int, code int, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "error_code": code})
	}
	switch r.URL.Path {
	case "/register":
		var uid string
		_ = json.Unmarshal(req["user_id"], &uid)
		b, _ := hex.DecodeString(uid)
		rec := teos.RegistrationReceipt{AvailableSlots: 10, SubscriptionStart: 1, SubscriptionExpiry: 100}
		copy(rec.UserID[:], b)
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": uid, "available_slots": 10, "subscription_start": 1,
			"subscription_expiry": 100, "subscription_signature": wtcrypto.SignMessage(rec.SignedBytes(), m.key)})
	case "/info":
		_ = json.NewEncoder(w).Encode(map[string]any{"tower_id": m.id(), "version": "moody",
			"extensions": []string{"add_appointments", "add_appointments_stream"}})
	case "/add_appointment", "/add_appointments":
		switch m.mode.Load().(string) {
		case "stopping":
			answer(http.StatusServiceUnavailable, teos.ErrCodeInvalidSignatureOrSubscriptionError,
				"Service currently unavailable: the tower is stopping, send again later")
		case "refuse":
			answer(http.StatusBadRequest, teos.ErrCodeAppointmentAlreadyTriggered, "The provided appointment has already been triggered")
		case "expired":
			answer(http.StatusUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError, "Your subscription expired at 100")
		case "slow":
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		default:
			var sig string
			var appt struct{ Locator string }
			_ = json.Unmarshal(req["signature"], &sig)
			_ = json.Unmarshal(req["appointment"], &appt)
			_ = json.NewEncoder(w).Encode(map[string]any{"locator": appt.Locator, "start_block": 7,
				"signature": wtcrypto.SignMessage(teos.AppointmentReceiptBytes(sig, 7), m.key), "available_slots": 9, "subscription_expiry": 100})
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// appointmentsFile writes a --file of n appointments and returns its path.
func appointmentsFile(t *testing.T, n int) string {
	type entry struct {
		CommitmentTxID string `json:"commitment_txid"`
		PenaltyRawTx   string `json:"penalty_rawtx"`
	}
	var entries []entry
	for i := range n {
		entries = append(entries, entry{chainhash.DoubleHashH([]byte{byte(i), 0xee}).String(), penaltyHex(t, i)})
	}
	b, _ := json.Marshal(entries)
	path := filepath.Join(t.TempDir(), "appts.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A user scripting teos-client must tell "refused" (exit 1: look at error_code) from "not
// done, try again" (exit 3): before, both were exit 1, and a tower that is stopping answers
// with error_code 7, the code of an expired subscription.
func TestExitStatusTellsRefusalFromTryAgain(t *testing.T) {
	tw := newMoodyTower(t)
	dir := filepath.Join(t.TempDir(), "c")
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	file := appointmentsFile(t, 3)
	for _, tc := range []struct {
		mode string
		args []string
		want int
	}{
		{"refuse", nil, exitFailure},
		{"expired", nil, exitFailure},
		{"stopping", nil, exitTryAgain},
		{"slow", []string{"--timeout", "100ms"}, exitTryAgain},
		{"refuse", []string{"add_appointment", "--file", file}, exitFailure},
		{"stopping", []string{"add_appointment", "--file", file}, exitTryAgain},
		{"stopping", []string{"upload", "--file", file, "--retry-for", "0s"}, exitTryAgain},
	} {
		tw.mode.Store(tc.mode)
		var code int
		var stderr string
		if len(tc.args) > 0 && tc.args[0] != "--timeout" {
			code, _, stderr = runCLI(t, false, append([]string{"--datadir", dir}, tc.args...)...)
		} else {
			code, stderr = addOne(t, dir, 1, tc.args...)
		}
		if code != tc.want {
			t.Errorf("%s %v: exit %d, want %d; stderr %s", tc.mode, tc.args, code, tc.want, stderr)
		}
	}

	// A tower that is not there.
	tw.Close()
	if code, stderr := addOne(t, dir, 2); code != exitTryAgain || !strings.Contains(stderr, "connection refused") {
		t.Errorf("tower down: exit %d, want %d; stderr %s", code, exitTryAgain, stderr)
	}
}

// An error of the tower wrapped with what the command knows (an upload's progress, what to do)
// is printed whole, with the tower's code: before, only the tower's message was printed, and
// an interrupted upload did not say how far it got or that running it again resumes it.
func TestTowerErrorKeepsCommandContext(t *testing.T) {
	tw := newMoodyTower(t)
	dir := filepath.Join(t.TempDir(), "c")
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", tw.URL, "--towerid", tw.id(), "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}
	tw.mode.Store("stopping")
	code, _, stderr := runCLI(t, false, "--datadir", dir, "upload", "--file", appointmentsFile(t, 2), "--retry-for", "0s")
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"error_code"`
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != exitTryAgain || json.Unmarshal([]byte(lines[len(lines)-1]), &e) != nil || e.Code != teos.ErrCodeInvalidSignatureOrSubscriptionError ||
		!strings.HasPrefix(e.Error, "upload stopped with 0 of 2 appointments acknowledged (run again to resume): ") ||
		!strings.HasSuffix(e.Error, ": Service currently unavailable: the tower is stopping, send again later") {
		t.Fatalf("upload to a stopping tower: exit %d, stderr %s", code, stderr)
	}
	// A bare tower error is printed as the tower sent it.
	tw.mode.Store("refuse")
	if code, stderr := addOne(t, dir, 1); code != exitFailure ||
		strings.TrimSpace(stderr) != `{"error":"The provided appointment has already been triggered","error_code":35}` {
		t.Fatalf("refused add: exit %d, stderr %s", code, stderr)
	}
}
