package gatekeeper

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Constants from rust-teos's gatekeeper tests (docs/VECTORS.md §7).
const (
	slots       = 21
	duration    = 500
	expiryDelta = 42
	startHeight = 100
)

func newGatekeeper(t *testing.T) (*Gatekeeper, *store.Store) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(Config{Store: db, SubscriptionSlots: slots, SubscriptionDuration: duration, ExpiryDelta: expiryDelta}, startHeight), db
}

func newKey(t *testing.T) (*btcec.PrivateKey, teos.UserID) {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, teos.UserIDFromPubKey(k.PubKey())
}

func TestRegisterAndRenew(t *testing.T) {
	g, _ := newGatekeeper(t)
	_, id := newKey(t)
	info, err := g.Register(id)
	if err != nil {
		t.Fatal(err)
	}
	if info != (store.UserInfo{AvailableSlots: slots, SubscriptionStart: startHeight, SubscriptionExpiry: startHeight + duration}) {
		t.Fatalf("first registration %+v", info)
	}
	g.SetHeight(startHeight + 10)
	info, err = g.Register(id)
	if err != nil {
		t.Fatal(err)
	}
	// Renewal extends from the old expiry, not from now, and keeps the start.
	if info != (store.UserInfo{AvailableSlots: 2 * slots, SubscriptionStart: startHeight, SubscriptionExpiry: startHeight + 2*duration}) {
		t.Fatalf("renewal %+v", info)
	}
}

func TestRegisterOverflow(t *testing.T) {
	g, db := newGatekeeper(t)
	_, id := newKey(t)
	full := store.UserInfo{AvailableSlots: math.MaxUint32 - slots + 1, SubscriptionStart: 1, SubscriptionExpiry: math.MaxUint32 - 1}
	if _, err := db.UpdateUser(id, func(store.UserInfo, bool) (store.UserInfo, error) { return full, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Register(id); !errors.Is(err, ErrMaxSlots) {
		t.Fatalf("overflowing renewal: %v, want ErrMaxSlots", err)
	}
	if got, _, _ := db.User(id); got != full {
		t.Fatalf("failed renewal changed the user: %+v", got)
	}
	// Expiry saturates instead of wrapping.
	full.AvailableSlots = 0
	db.UpdateUser(id, func(store.UserInfo, bool) (store.UserInfo, error) { return full, nil })
	info, err := g.Register(id)
	if err != nil || info.SubscriptionExpiry != math.MaxUint32 {
		t.Fatalf("saturating renewal: %+v %v", info, err)
	}
}

func TestAuthenticate(t *testing.T) {
	g, _ := newGatekeeper(t)
	sk, id := newKey(t)
	msg := []byte("get subscription info")
	if _, _, err := g.Authenticate(msg, wtcrypto.SignMessage(msg, sk)); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("unregistered user: %v", err)
	}
	if _, err := g.Register(id); err != nil {
		t.Fatal(err)
	}
	got, info, err := g.Authenticate(msg, wtcrypto.SignMessage(msg, sk))
	if err != nil || got != id || info.AvailableSlots != slots {
		t.Fatalf("registered user: %s %+v %v", got, info, err)
	}
	for _, sig := range []string{"", "not zbase32!", wtcrypto.SignMessage([]byte("other"), sk)} {
		if got, _, err := g.Authenticate(msg, sig); err == nil && got == id {
			t.Fatalf("signature %q authenticated", sig)
		}
	}
}

func TestExpiry(t *testing.T) {
	g, _ := newGatekeeper(t)
	info := store.UserInfo{SubscriptionExpiry: startHeight + 1}
	if err := g.CheckExpiry(info); err != nil {
		t.Fatalf("one block before expiry: %v", err)
	}
	g.SetHeight(startHeight + 1)
	var exp *SubscriptionExpiredError
	if err := g.CheckExpiry(info); !errors.As(err, &exp) || exp.Expiry != startHeight+1 {
		t.Fatalf("at expiry: %v", err)
	}
}

func TestChargeAppointment(t *testing.T) {
	g, _ := newGatekeeper(t)
	user := store.UserInfo{AvailableSlots: 2}
	for _, tc := range []struct {
		name              string
		blob, prev        int
		replacing         bool
		wantSlots         uint32
		wantNotEnoughSlot bool
	}{
		{"new 1-slot blob", 100, 0, false, 1, false},
		{"empty blob is free", 0, 0, false, 2, false},
		{"2049 bytes take 2 slots", 2049, 0, false, 0, false},
		{"3 slots is too many", 2*2048 + 1, 0, false, 0, true},
		{"same size update is free", 100, 200, true, 2, false},
		{"shrinking update refunds", 100, 2049, true, 3, false},
		{"growing update charges the difference", 4096, 100, true, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := g.ChargeAppointment(tc.blob)(user, tc.prev, tc.replacing)
			if tc.wantNotEnoughSlot {
				if !errors.Is(err, ErrNotEnoughSlots) {
					t.Fatalf("err %v, want ErrNotEnoughSlots", err)
				}
				return
			}
			if err != nil || got.AvailableSlots != tc.wantSlots {
				t.Fatalf("slots %d err %v, want %d", got.AvailableSlots, err, tc.wantSlots)
			}
		})
	}
}

// A shrinking update refunds at most up to the slot counter's top: a user renewed up to
// math.MaxUint32 slots after a 2-slot appointment was charged must not wrap round to 0.
func TestChargeAppointmentRefundSaturates(t *testing.T) {
	g, _ := newGatekeeper(t)
	for _, avail := range []uint32{math.MaxUint32, math.MaxUint32 - 1} {
		got, err := g.ChargeAppointment(100)(store.UserInfo{AvailableSlots: avail}, 2*2048, true)
		if err != nil || got.AvailableSlots != math.MaxUint32 {
			t.Fatalf("refund of 1 slot to %d: %d %v, want %d", avail, got.AvailableSlots, err, uint32(math.MaxUint32))
		}
	}
}

func TestOutdatedUsersDeletedOnBlock(t *testing.T) {
	g, db := newGatekeeper(t)
	_, id := newKey(t)
	info, _ := g.Register(id)
	outdated := info.SubscriptionExpiry + expiryDelta
	if err := g.BlockConnected(context.Background(), nil, outdated-1); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.User(id); !ok {
		t.Fatal("user deleted one block early")
	}
	if err := g.BlockConnected(context.Background(), nil, outdated); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.User(id); ok {
		t.Fatal("outdated user kept")
	}
	if err := g.BlockDisconnected(context.Background(), nil, outdated); err != nil || g.Height() != outdated-1 {
		t.Fatalf("height after disconnect %d (%v)", g.Height(), err)
	}
}
