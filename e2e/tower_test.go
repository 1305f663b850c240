package e2e

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestTowerEndToEnd drives a real teosd on a real btcd through the public API the way a
// watchtower client does, checking every receipt against the tower id teosd printed.
func TestTowerEndToEnd(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "subscription_slots = 100\nsubscription_duration = 50\n")
	tw.start()

	alice, bob := newUser(t), newUser(t)
	reg := alice.register(t, tw)
	height := uint32(110)
	if reg.AvailableSlots != 100 || reg.SubscriptionStart != height || reg.SubscriptionExpiry != height+50 {
		t.Fatalf("registration %+v, want 100 slots, start %d, expiry %d", reg, height, height+50)
	}
	// Renewal adds slots and extends the old expiry.
	reg = alice.register(t, tw)
	if reg.AvailableSlots != 200 || reg.SubscriptionStart != height || reg.SubscriptionExpiry != height+100 {
		t.Fatalf("renewal %+v", reg)
	}

	a := randomAppointment(t, 300)
	r := alice.add(t, tw, a)
	if r.StartBlock != height || r.AvailableSlots != 199 || r.SubscriptionExpiry != height+100 {
		t.Fatalf("add receipt %+v", r)
	}
	code, got := alice.get(t, tw, a.Locator)
	if code != 200 || got["status"] != "being_watched" {
		t.Fatalf("get_appointment: %d %v", code, got)
	}
	appt := got["appointment"].(map[string]any)
	if appt["locator"] != a.Locator.String() || appt["encrypted_blob"] != hex.EncodeToString(a.EncryptedBlob) || appt["to_self_delay"] != float64(42) {
		t.Fatalf("appointment %v", appt)
	}

	// Blocks move the height the tower stamps on receipts.
	node.Generate(t, 3)
	waitFor(t, "tower at height 113", func() bool {
		return alice.add(t, tw, randomAppointment(t, 10)).StartBlock == height+3
	})

	// An update replaces the blob, restarts the appointment at the current height and costs no
	// extra slot (both blobs take one slot).
	a.EncryptedBlob = append(a.EncryptedBlob, 1, 2, 3)
	before := alice.subscriptionOK(t, tw)
	r = alice.add(t, tw, a)
	if r.StartBlock != height+3 || r.AvailableSlots != before.AvailableSlots {
		t.Fatalf("update receipt %+v, slots before %d", r, before.AvailableSlots)
	}
	if _, got := alice.get(t, tw, a.Locator); got["appointment"].(map[string]any)["encrypted_blob"] != hex.EncodeToString(a.EncryptedBlob) {
		t.Fatalf("update not stored: %v", got)
	}
	sub := alice.subscriptionOK(t, tw)
	if len(sub.Locators) < 2 || !contains(sub.Locators, a.Locator.String()) {
		t.Fatalf("subscription locators %v", sub.Locators)
	}

	// Bob is not registered: every request fails authentication.
	if code, raw := post(t, tw.apiURL, "/add_appointment", bob.addRequest(a), nil); code != 401 || !strings.Contains(string(raw), `"error_code":7`) {
		t.Fatalf("unregistered add: %d %s", code, raw)
	}
	if code, _, raw := bob.subscription(t, tw); code != 401 || !strings.Contains(string(raw), "User not found. Have you registered?") {
		t.Fatalf("unregistered subscription info: %d %s", code, raw)
	}
	// Once registered, Bob still cannot read Alice's appointment.
	bob.register(t, tw)
	if code, got := bob.get(t, tw, a.Locator); code != 404 || got["error"] != "Appointment not found" || got["error_code"] != float64(36) {
		t.Fatalf("bob reads alice's appointment: %d %v", code, got)
	}
	// A signature over other bytes does not authenticate.
	req := alice.addRequest(a)
	req["signature"] = wtcrypto.SignMessage([]byte("something else"), alice.key)
	if code, raw := post(t, tw.apiURL, "/add_appointment", req, nil); code != 401 {
		t.Fatalf("forged add: %d %s", code, raw)
	}
	// Malformed input is refused before the core.
	if code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": "aa"}, nil); code != 400 || !strings.Contains(string(raw), `"error_code":4`) {
		t.Fatalf("short user id: %d %s", code, raw)
	}
	if code, raw := post(t, tw.apiURL, "/register", map[string]string{"user_id": "05" + strings.Repeat("11", 32)}, nil); code != 400 || !strings.Contains(string(raw), "Provided public key does not match expected format (33-byte compressed key)") {
		t.Fatalf("invalid key: %d %s", code, raw)
	}

	// Expiry: past subscription_expiry the user is refused, past expiry+expiry_delta deleted.
	node.Generate(t, uint32(reg.SubscriptionExpiry-(height+3)))
	waitFor(t, "subscription expired", func() bool {
		code, _, raw := alice.subscription(t, tw)
		return code == 401 && strings.Contains(string(raw), fmt.Sprintf("Your subscription expired at %d", reg.SubscriptionExpiry))
	})
	node.Generate(t, 6)
	waitFor(t, "user outdated", func() bool {
		code, _, raw := alice.subscription(t, tw)
		return code == 401 && strings.Contains(string(raw), "User not found")
	})
	tw.stop()
}

// TestReceiptsAreDurable kills teosd with SIGKILL right after receipts came back and finds
// every acknowledged appointment after a restart.
func TestReceiptsAreDurable(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	id := tw.id

	const clients, perClient = 16, 8
	users := make([]*user, clients)
	for i := range users {
		users[i] = newUser(t)
		users[i].register(t, tw)
	}
	acked := make([][]teos.Appointment, clients)
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			for range perClient {
				a := randomAppointment(t, 100)
				users[i].add(t, tw, a)
				acked[i] = append(acked[i], a)
			}
		})
	}
	wg.Wait()
	tw.kill()

	tw.start()
	if tw.id != id {
		t.Fatalf("tower id changed across restart: %s -> %s", id, tw.id)
	}
	n := 0
	for i, u := range users {
		for _, a := range acked[i] {
			code, got := u.get(t, tw, a.Locator)
			if code != http.StatusOK || got["appointment"].(map[string]any)["encrypted_blob"] != hex.EncodeToString(a.EncryptedBlob) {
				t.Fatalf("appointment %s lost after SIGKILL: %d %v", a.Locator, code, got)
			}
			n++
		}
		if sub := u.subscriptionOK(t, tw); sub.AvailableSlots != 10000-perClient {
			t.Fatalf("slots after restart %d, want %d", sub.AvailableSlots, 10000-perClient)
		}
	}
	if n != clients*perClient {
		t.Fatalf("checked %d appointments, want %d", n, clients*perClient)
	}
}

// TestOverwriteKeyKeepsOldKeys checks --overwritekey gives a new tower id.
func TestOverwriteKey(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	first := tw.id
	tw.stop()
	tw.start()
	if tw.id != first {
		t.Fatalf("tower id changed without --overwritekey")
	}
	tw.stop()
	tw.start("--overwritekey")
	if tw.id == first {
		t.Fatalf("--overwritekey kept the old tower id")
	}
	tw.stop()
}

func (u *user) subscriptionOK(t testing.TB, tw *tower) subscriptionResp {
	t.Helper()
	code, r, raw := u.subscription(t, tw)
	if code != 200 {
		t.Fatalf("get_subscription_info: %d %s", code, raw)
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
