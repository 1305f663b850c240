package e2e

import (
	"crypto/rand"
	"maps"
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/internal/store"
)

// TestSubscriptionInfoPastFourMiB: a user holding 260,000 appointments gets all their locators
// from get_subscription_info over real HTTP and the internal gRPC hop, and teos-cli
// getallappointments lists them all. Both answers are over grpc-go's default 4 MiB receive
// limit (18 bytes a locator on the wire: about 4.5 MiB here); before, the first failed with
// 400 / 65 and the second with a ResourceExhausted error.
func TestSubscriptionInfoPastFourMiB(t *testing.T) {
	const n = 260_000
	node := startNode(t)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)
	tw.stop()

	// Filled straight into the store (BulkLoad, as a rust-teos import does): 260,000 signed
	// adds over HTTP would take minutes.
	s, err := store.Open(filepath.Join(tw.dataDir, "regtest", "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]struct{}, n)
	batch := make([]*store.Appointment, 0, 100_000)
	for i := range n {
		a := &store.Appointment{UserID: alice.id, UserSignature: "d", StartBlock: 110}
		if _, err := rand.Read(a.Locator[:]); err != nil {
			t.Fatal(err)
		}
		a.EncryptedBlob, a.ToSelfDelay = a.Locator[:], 42
		want[a.Locator.String()] = struct{}{}
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
	code, info, raw := alice.subscription(t, tw)
	if code != 200 {
		t.Fatalf("get_subscription_info: %d %.300s\n%s", code, raw, tw.logs())
	}
	got := make(map[string]struct{}, len(info.Locators))
	for _, l := range info.Locators {
		got[l] = struct{}{}
	}
	if len(info.Locators) != n || !maps.Equal(got, want) {
		t.Fatalf("get_subscription_info: %d locators (%d distinct), want the %d stored", len(info.Locators), len(got), n)
	}

	var all cliAppointments
	tw.cliOK(t, &all, "getallappointments")
	if len(all.Appointments) != n {
		t.Fatalf("getallappointments: %d appointments, want %d", len(all.Appointments), n)
	}
	tw.stop()
}
