package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/client"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestSubscriptionInfoPastFourMiB: a user holding 260,000 appointments gets all their locators
// from get_subscription_info over real HTTP and the internal gRPC hop, and teos-cli getuser
// lists all their appointments over the admin RPC. Both answers are over grpc-go's default
// 4 MiB receive limit (18 and 22 bytes an entry on the wire: 4.5 and 5.4 MiB here); before,
// the first failed with 400 / 65 and the second with ResourceExhausted. The user's own
// clients, teos-client and pkg/client, read the whole answer too: 9.1 MB of JSON, past the
// 8 MiB they hold any other answer to (before, both failed with a malformed answer).
func TestSubscriptionInfoPastFourMiB(t *testing.T) {
	const n = 260_000
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	cli := newClientCLI(t, tw)
	if reg := cli.run("--towerid", tw.id.String(), "register"); reg["user_id"] == nil {
		t.Fatalf("teos-client register printed %v", reg)
	}
	alice := cliUserKey(t, cli)
	tw.stop()

	// Filled straight into the store (BulkLoad, as a rust-teos import does): 260,000 signed
	// adds over HTTP would take minutes.
	s, err := store.Open(filepath.Join(tw.dataDir, "regtest", "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	locators := make(map[string]struct{}, n)
	uuids := make(map[string]struct{}, n)
	batch := make([]*store.Appointment, 0, 100_000)
	for i := range n {
		a := &store.Appointment{UserID: alice.id, UserSignature: "d", StartBlock: 110}
		if _, err := rand.Read(a.Locator[:]); err != nil {
			t.Fatal(err)
		}
		a.EncryptedBlob, a.ToSelfDelay = a.Locator[:], 42
		locators[a.Locator.String()] = struct{}{}
		uuids[a.UUID().String()] = struct{}{}
		if batch = append(batch, a); len(batch) == cap(batch) || i == n-1 {
			if err := s.BulkLoad(nil, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tw.start()
	began := time.Now()
	code, info, raw := bigSubscription(t, tw, alice)
	if code != http.StatusOK {
		t.Fatalf("get_subscription_info: %d %.300s\n%s", code, raw, tw.logs())
	}
	t.Logf("get_subscription_info: %d locators, %d bytes of JSON in %v", len(info.Locators), len(raw), time.Since(began))
	if got := setOf(info.Locators); len(info.Locators) != n || !maps.Equal(got, locators) {
		t.Fatalf("get_subscription_info: %d locators (%d distinct), want the %d stored", len(info.Locators), len(got), n)
	}

	// teos-client, as a user runs it (the key and tower saved in its data dir by register).
	began = time.Now()
	out := cli.run("--timeout", "5m", "get_subscription_info")
	locs, _ := out["locators"].([]any)
	got := make(map[string]struct{}, len(locs))
	for _, l := range locs {
		s, _ := l.(string)
		got[s] = struct{}{}
	}
	t.Logf("teos-client get_subscription_info: %d locators in %v", len(locs), time.Since(began))
	if len(locs) != n || !maps.Equal(got, locators) {
		t.Fatalf("teos-client get_subscription_info: %d locators (%d distinct), want the %d stored", len(locs), len(got), n)
	}

	// pkg/client, with the same key.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	began = time.Now()
	sub, err := client.New(tw.apiURL, tw.id, alice.key).GetSubscriptionInfo(ctx)
	if err != nil {
		t.Fatalf("pkg/client GetSubscriptionInfo: %v", err)
	}
	t.Logf("pkg/client GetSubscriptionInfo: %d locators in %v", len(sub.Locators), time.Since(began))
	clear(got)
	for _, l := range sub.Locators {
		got[l.String()] = struct{}{}
	}
	if len(sub.Locators) != n || !maps.Equal(got, locators) {
		t.Fatalf("pkg/client GetSubscriptionInfo: %d locators (%d distinct), want the %d stored", len(sub.Locators), len(got), n)
	}

	var u cliUser
	tw.cliOK(t, &u, "getuser", alice.id.String())
	if got := setOf(u.Appointments); len(u.Appointments) != n || !maps.Equal(got, uuids) {
		t.Fatalf("teos-cli getuser: %d appointments (%d distinct), want the %d stored", len(u.Appointments), len(got), n)
	}
	tw.stop()
}

// bigSubscription is user.subscription with time for a big answer on a loaded machine
// (teosd under -race looks 260,000 appointments up in the store).
func bigSubscription(t *testing.T, tw *tower, u *user) (int, subscriptionResp, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"signature": wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, u.key)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tw.apiURL+"/get_subscription_info", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get_subscription_info: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r subscriptionResp
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("get_subscription_info: %v", err)
		}
	}
	return resp.StatusCode, r, raw
}

// cliUserKey is the user whose key teos-client keeps in its data dir.
func cliUserKey(t *testing.T, cli *clientCLI) *user {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cli.dataDir, "user_sk"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(sk) != 32 {
		t.Fatalf("teos-client user_sk %q: %v", b, err)
	}
	k, _ := btcec.PrivKeyFromBytes(sk)
	return &user{key: k, id: teos.UserIDFromPubKey(k.PubKey())}
}

func setOf(list []string) map[string]struct{} {
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}
