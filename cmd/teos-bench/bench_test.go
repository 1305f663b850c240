package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func TestParseMix(t *testing.T) {
	m, err := parseMix("add=3,get=1,info=0")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.pick(0.1); got != epAdd {
		t.Errorf("pick(0.1) = %s", got)
	}
	if got := m.pick(0.8); got != epGet {
		t.Errorf("pick(0.8) = %s", got)
	}
	if m.has(epInfo) {
		t.Error("a zero weight must drop the endpoint")
	}
	for _, bad := range []string{"", "add", "add=-1", "foo=1", "add=0", "add=1,add=2", "add=NaN,get=1", "add=Inf,get=1", "add=1e400,get=1"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
}

func TestQuantile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := quantile(l, q); got != want {
			t.Errorf("quantile(%v) = %d, want %d", q, got, want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("empty quantile")
	}
}

// fakeTower answers the four endpoints like a v0.2 tower, signing receipts with key; it
// refuses one add_appointment in refuseEvery with 400 / error_code 35.
type fakeTower struct {
	key         *btcec.PrivateKey
	refuseEvery int
	mu          sync.Mutex
	adds        int
	paths       map[string]int
}

func (f *fakeTower) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.paths[r.URL.Path]++
	f.mu.Unlock()
	switch r.URL.Path {
	case "/register":
		var req struct {
			UserID string `json:"user_id"`
		}
		_ = json.Unmarshal(body, &req)
		raw, _ := hex.DecodeString(req.UserID)
		id, err := teos.ParseUserID(raw)
		if err != nil {
			http.Error(w, `{"error":"bad","error_code":5}`, http.StatusBadRequest)
			return
		}
		rec := teos.RegistrationReceipt{UserID: id, AvailableSlots: 100, SubscriptionStart: 1, SubscriptionExpiry: 10}
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": req.UserID, "available_slots": 100, "subscription_start": 1,
			"subscription_expiry": 10, "subscription_signature": wtcrypto.SignMessage(rec.SignedBytes(), f.key)})
	case "/add_appointment":
		var req struct {
			Appointment struct {
				Locator string `json:"locator"`
			} `json:"appointment"`
			Signature string `json:"signature"`
		}
		_ = json.Unmarshal(body, &req)
		f.mu.Lock()
		f.adds++
		refuse := f.refuseEvery > 0 && f.adds%f.refuseEvery == 0
		f.mu.Unlock()
		if refuse {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"triggered","error_code":35}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"locator": req.Appointment.Locator, "start_block": 7,
			"signature": wtcrypto.SignMessage(teos.AppointmentReceiptBytes(req.Signature, 7), f.key)})
	default:
		_, _ = w.Write([]byte(`{}`))
	}
}

func TestBenchAgainstFakeTower(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	fake := &fakeTower{key: key, refuseEvery: 10, paths: map[string]int{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	var out bytes.Buffer
	args := []string{"-url", srv.URL, "-users", "4", "-c", "3", "-n", "200", "-mix", "add=1,get=0.2,info=0.1",
		"-towerid", teos.UserIDFromPubKey(key.PubKey()).String(), "-bound", "10ms", "-json"}
	if err := run(context.Background(), args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	total := 0
	for _, e := range rep.Endpoints {
		total += e.Requests
	}
	if total != 200 {
		t.Errorf("%d requests reported, want 200 (-n)", total)
	}
	if fake.paths["/register"] != 4 {
		t.Errorf("%d registrations, want 4", fake.paths["/register"])
	}
	if rep.ReceiptMismatches != 0 || rep.ReceiptsChecked == 0 {
		t.Errorf("receipts checked %d, mismatched %d", rep.ReceiptsChecked, rep.ReceiptMismatches)
	}
	var refused int64
	for k, v := range rep.Errors {
		if !strings.Contains(k, "add_appointment HTTP 400 error_code=35") {
			t.Errorf("unexpected error %q", k)
		}
		refused += v
	}
	if refused == 0 || refused != int64(fake.adds/10) {
		t.Errorf("%d refusals reported, server refused %d", refused, fake.adds/10)
	}
	if rep.BoundBefore == nil || rep.BoundRatio <= 0 {
		t.Error("no crypto bound or ratio")
	}
}

func TestBenchWrongTowerKey(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	other, _ := btcec.NewPrivateKey()
	srv := httptest.NewServer(&fakeTower{key: key, paths: map[string]int{}})
	defer srv.Close()
	args := []string{"-url", srv.URL, "-users", "1", "-c", "1", "-n", "5", "-bound", "0",
		"-towerid", teos.UserIDFromPubKey(other.PubKey()).String()}
	err := run(context.Background(), args, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("run = %v, want a registration receipt error", err)
	}
}

func TestBenchStopsOnDuration(t *testing.T) {
	key, _ := btcec.NewPrivateKey()
	srv := httptest.NewServer(&fakeTower{key: key, paths: map[string]int{}})
	defer srv.Close()
	start := time.Now()
	args := []string{"-url", srv.URL, "-users", "2", "-c", "2", "-duration", "200ms", "-bound", "0", "-sign", "inline"}
	if err := run(context.Background(), args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 200ms run took %s", d)
	}
}

func TestRefusesNonLoopbackUnlessAllowed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-url", "http://127.0.0.1:9814"}, true},
		{[]string{"-url", "http://localhost:9814"}, true},
		{[]string{"-url", "http://[::1]:9814"}, true},
		{[]string{"-url", "http://10.0.0.5:9814"}, false},
		{[]string{"-url", "http://tower.example:9814"}, false},
		{[]string{"-url", "http://tower.example:9814", "-allow-remote"}, true},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("parseFlags(%v) = %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

// TestRefusesNegativeBound: -bound's help says 0 skips the measurement; a negative one was
// taken as 0 without a word.
func TestRefusesNegativeBound(t *testing.T) {
	if _, err := parseFlags([]string{"-bound", "-1s"}, io.Discard); err == nil {
		t.Error("-bound -1s accepted")
	}
}

// TestHelpIsNotAnError: -h printed the usage, then 'teos-bench: flag: help requested' and
// exit 1.
func TestHelpIsNotAnError(t *testing.T) {
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, io.Discard, &usage); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	if !strings.Contains(usage.String(), "-url") {
		t.Fatalf("no usage printed: %q", usage.String())
	}
}
