package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
)

// TestPrintSubscriptionAsMarshalIndent: the streamed output is byte for byte what printJSON
// printed for the same answer.
func TestPrintSubscriptionAsMarshalIndent(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		info := &client.SubscriptionInfo{AvailableSlots: 4294967295, SubscriptionExpiry: 7, Locators: []teos.Locator{}}
		hexes := []string{}
		for i := range n {
			var l teos.Locator
			l[0], l[15] = byte(i), 0xab
			info.Locators = append(info.Locators, l)
			hexes = append(hexes, l.String())
		}
		var want, got strings.Builder
		(&app{stdout: &want}).printJSON(struct {
			AvailableSlots     uint32   `json:"available_slots"`
			SubscriptionExpiry uint32   `json:"subscription_expiry"`
			Locators           []string `json:"locators"`
		}{info.AvailableSlots, info.SubscriptionExpiry, hexes})
		if err := (&app{stdout: &got}).printSubscription(info); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("%d locators: printed\n%s\nwant\n%s", n, got.String(), want.String())
		}
	}
}

// TestSubscriptionInfoBigAndHostile: teos-client prints all of a 260,000-locator answer (9.1 MB,
// over the 8 MiB other answers are held to), and refuses an endless one with a clear error,
// nothing on stdout and the data dir untouched.
func TestSubscriptionInfoBigAndHostile(t *testing.T) {
	const n = 260_000
	key, _ := btcec.NewPrivateKey()
	towerID := teos.UserIDFromPubKey(key.PubKey()).String()
	reg := fakeTower(t, key)
	var hostile atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/get_subscription_info" {
			reg.Config.Handler.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"available_slots":10,"subscription_expiry":100,"locators":[`)
		for i := 0; hostile.Load() || i < n; i++ {
			sep := ","
			if i == 0 {
				sep = ""
			}
			if _, err := fmt.Fprintf(w, `%s"%032x"`, sep, i); err != nil {
				return // the client hung up
			}
		}
		_, _ = io.WriteString(w, "]}")
	}))
	t.Cleanup(srv.Close)
	dir := filepath.Join(t.TempDir(), "c")
	if code, _, stderr := runCLI(t, false, "--datadir", dir, "--tower", srv.URL, "--towerid", towerID, "register"); code != 0 {
		t.Fatalf("register: %d %s", code, stderr)
	}

	code, stdout, stderr := runCLI(t, false, "--datadir", dir, "get_subscription_info")
	if code != 0 {
		t.Fatalf("get_subscription_info: %d %s", code, stderr)
	}
	var out struct {
		AvailableSlots uint32   `json:"available_slots"`
		Locators       []string `json:"locators"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Locators) != n || out.Locators[n-1] != fmt.Sprintf("%032x", n-1) || out.AvailableSlots != 10 {
		t.Fatalf("printed %d locators (last %q), slots %d", len(out.Locators), out.Locators[len(out.Locators)-1], out.AvailableSlots)
	}

	// The same answer over a bound the user set.
	code, stdout, stderr = runCLI(t, false, "--datadir", dir, "get_subscription_info", "--max-locators", "259999")
	var e struct{ Error string }
	if code != exitFailure || stdout != "" || json.Unmarshal([]byte(stderr), &e) != nil || !strings.Contains(e.Error, "more than 259999 locators") {
		t.Fatalf("over --max-locators: exit %d, stdout %.100q, stderr %s; want exit %d, a JSON error naming the bound", code, stdout, stderr, exitFailure)
	}
	for _, bad := range [][]string{{"--max-locators", "0"}, {"--max-locators", "x"}, {"extra"}} {
		if code, _, stderr := runCLI(t, false, append([]string{"--datadir", dir, "get_subscription_info"}, bad...)...); code != exitUsage {
			t.Fatalf("get_subscription_info %v: exit %d (%s), want %d", bad, code, stderr, exitUsage)
		}
	}

	// An endless answer stops at the bound. (The default bound, DefaultMaxLocators, is the
	// same code path with 57 times as many locators: too slow for a unit test.)
	hostile.Store(true)
	before := snapshot(t, dir)
	code, stdout, stderr = runCLI(t, false, "--datadir", dir, "get_subscription_info", "--max-locators", "300000")
	if code != exitFailure || stdout != "" || json.Unmarshal([]byte(stderr), &e) != nil || !strings.Contains(e.Error, "more than 300000 locators") {
		t.Fatalf("endless answer: exit %d, stdout %.100q, stderr %s; want exit %d, a JSON error naming the bound", code, stdout, stderr, exitFailure)
	}
	if after := snapshot(t, dir); after != before {
		t.Fatalf("the data dir changed:\n%s\nwas\n%s", after, before)
	}
}
