package watcher

import (
	"bytes"
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func signedItem(u testUser, loc teos.Locator, blobLen int) Item {
	a := teos.Appointment{Locator: loc, EncryptedBlob: bytes.Repeat([]byte{7}, blobLen), ToSelfDelay: 42}
	return Item{Appointment: a, Signature: wtcrypto.SignMessage(a.SignedBytes(), u.sk)}
}

func TestAddAppointmentsPerItemOutcomes(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.newUser(), f.newUser()
	stranger := testUser{sk: f.w.key} // the tower's key is not a registered user

	triggered := teos.Locator{9}
	f.add(bob, triggered, []byte{1})
	tx := newTx(1)
	if err := f.store.PutTracker(&store.Tracker{UUID: uuid(triggered, bob), DisputeTx: serialize(tx), PenaltyTx: serialize(spend(tx, 1)),
		DisputeTxID: tx.TxHash(), PenaltyTxID: spend(tx, 1).TxHash(), Height: testHeight}); err != nil {
		t.Fatal(err)
	}

	bigBlob := (testSlots - 1) * teos.EncryptedBlobMaxSize // leaves alice one slot
	items := []Item{
		signedItem(alice, teos.Locator{1}, bigBlob),
		signedItem(stranger, teos.Locator{2}, 10),
		signedItem(alice, teos.Locator{3}, 10), // takes the last slot
		signedItem(alice, teos.Locator{4}, 10), // none left
		signedItem(bob, triggered, 10),         // already triggered
		signedItem(alice, teos.Locator{3}, 20), // update of item 2: free
		{Appointment: teos.Appointment{Locator: teos.Locator{5}}, Signature: "garbage"},
	}
	res := f.w.AddAppointments(items)
	wantErr := []error{nil, gatekeeper.ErrAuthenticationFailed, nil, gatekeeper.ErrNotEnoughSlots,
		ErrAlreadyTriggered, nil, gatekeeper.ErrAuthenticationFailed}
	wantSlots := []uint32{1, 0, 0, 0, 0, 0, 0}
	for i, r := range res {
		if wantErr[i] == nil {
			if r.Err != nil || r.Accepted == nil {
				t.Fatalf("item %d: %v", i, r.Err)
			}
			if r.Accepted.AvailableSlots != wantSlots[i] || r.Accepted.StartBlock != testHeight {
				t.Errorf("item %d: receipt %+v", i, r.Accepted)
			}
			msg := teos.AppointmentReceiptBytes(items[i].Signature, r.Accepted.StartBlock)
			if id, err := wtcrypto.RecoverUserID(msg, r.Accepted.Signature); err != nil || id != f.w.TowerID() {
				t.Errorf("item %d: receipt not signed by the tower: %v", i, err)
			}
			continue
		}
		if !errors.Is(r.Err, wantErr[i]) || r.Accepted != nil {
			t.Errorf("item %d: err = %v, want %v", i, r.Err, wantErr[i])
		}
	}
	if got := f.slots(alice); got != 0 {
		t.Fatalf("alice has %d slots, want 0", got)
	}
	a, err := f.store.Appointment(uuid(teos.Locator{3}, alice))
	if err != nil || len(a.EncryptedBlob) != 20 {
		t.Fatalf("duplicate in batch did not update: %+v, %v", a, err)
	}
	if f.stored(uuid(teos.Locator{4}, alice)) {
		t.Fatal("refused item stored")
	}
}

func TestAddAppointmentsExpired(t *testing.T) {
	f := newFixture(t)
	alice := f.newUser()
	f.w.gk.SetHeight(testHeight + 5000)
	res := f.w.AddAppointments([]Item{signedItem(alice, teos.Locator{1}, 10)})
	if _, ok := errors.AsType[*gatekeeper.SubscriptionExpiredError](res[0].Err); !ok {
		t.Fatalf("err = %v, want expired", res[0].Err)
	}
	if got := f.w.AddAppointments(nil); len(got) != 0 {
		t.Fatalf("empty batch = %v", got)
	}
}

// A batch tried again (held through a store fault) reuses the signers its first try
// recovered: the second try here succeeds although every signature was replaced by garbage,
// which only a fresh recovery would see. A signature that did not recover stays refused.
func TestRetriedBatchRecoversSignersOnce(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.newUser(), f.newUser()
	items := []Item{
		signedItem(alice, teos.Locator{1}, 10),
		{Appointment: teos.Appointment{Locator: teos.Locator{2}, EncryptedBlob: []byte{1}, ToSelfDelay: 42}, Signature: "not a signature"},
		signedItem(bob, teos.Locator{3}, 10),
	}
	// The first try is stopped before writing, as by a store fault while authenticating.
	stop := func(err error) bool { return errors.Is(err, gatekeeper.ErrAuthenticationFailed) }
	if _, err := f.w.AddAppointmentsUnless(items, stop); err == nil {
		t.Fatal("the first try went through; want it stopped")
	}
	if _, n, _, err := f.store.Counts(); err != nil || n != 0 {
		t.Fatalf("%d appointments stored by a stopped try (%v), want 0", n, err)
	}
	for i := range items {
		items[i].Signature = "replaced"
	}
	res, err := f.w.AddAppointmentsUnless(items, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil {
		t.Errorf("second try: alice %v, bob %v; want both accepted with the signers recovered before", res[0].Err, res[2].Err)
	}
	if !errors.Is(res[1].Err, gatekeeper.ErrAuthenticationFailed) {
		t.Errorf("second try, the bad signature: %v, want ErrAuthenticationFailed", res[1].Err)
	}
}
