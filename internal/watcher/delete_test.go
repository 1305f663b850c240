package watcher

import (
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func (f *fixture) delete(u testUser, loc teos.Locator) (*Deleted, error) {
	return f.w.DeleteAppointment(loc, wtcrypto.SignMessage(teos.DeleteAppointmentMessage(loc), u.sk))
}

func TestDeleteAppointment(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.newUser(), f.newUser()
	b := newBreach(1)
	f.add(alice, b.loc, b.blob)
	f.add(bob, b.loc, b.blob)
	if _, err := f.delete(alice, newBreach(2).loc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown locator: %v", err)
	}
	d, err := f.delete(alice, b.loc)
	if err != nil {
		t.Fatal(err)
	}
	userSig := wtcrypto.SignMessage(teos.DeleteAppointmentMessage(b.loc), alice.sk)
	if d.Locator != b.loc || d.DeletionBlock != testHeight || d.AvailableSlots != testSlots ||
		!wtcrypto.VerifySignature(teos.DeletionReceiptBytes(userSig, d.DeletionBlock), d.Signature, f.w.TowerID()) {
		t.Fatalf("receipt %+v", d)
	}
	if f.stored(uuid(b.loc, alice)) || !f.stored(uuid(b.loc, bob)) || f.slots(alice) != testSlots {
		t.Fatal("the deletion did not remove exactly alice's appointment with a refund")
	}
	// Bob's dispute is mined: his appointment is tracked and cannot go any more.
	f.connect(b.dispute)
	if !f.hasTracker(uuid(b.loc, bob)) {
		t.Fatal("breach not handed over")
	}
	if _, err := f.delete(bob, b.loc); !errors.Is(err, ErrAlreadyTriggered) {
		t.Fatalf("tracked appointment: %v, want ErrAlreadyTriggered", err)
	}
	if !f.stored(uuid(b.loc, bob)) {
		t.Fatal("a refused deletion removed the appointment")
	}
}

// An appointment whose dispute is in a recent block is being handed over: deleting it now
// would race the penalty, so it is refused even before a tracker exists.
func TestDeleteAppointmentRecentDispute(t *testing.T) {
	f := newFixture(t)
	alice := f.newUser()
	b := newBreach(3)
	f.w.SeedBlock(f.block(b.dispute)) // cached, not yet looked up
	// Stored directly: AddAppointment would hand it over at once.
	a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
	sig := wtcrypto.SignMessage(a.SignedBytes(), alice.sk)
	if _, err := f.store.UpsertAppointment(storeAppointment(a, alice, sig), f.w.addPolicy(storeAppointment(a, alice, sig))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.delete(alice, b.loc); !errors.Is(err, ErrAlreadyTriggered) {
		t.Fatalf("recent dispute: %v, want ErrAlreadyTriggered", err)
	}
	if !f.stored(uuid(b.loc, alice)) {
		t.Fatal("refused deletion removed the appointment")
	}
	// A user without the appointment still gets not found, not a hint.
	bob := f.newUser()
	if _, err := f.delete(bob, b.loc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user: %v, want ErrNotFound", err)
	}
}

func storeAppointment(a teos.Appointment, u testUser, sig string) *store.Appointment {
	return &store.Appointment{Appointment: a, UserID: u.id, UserSignature: sig, StartBlock: testHeight}
}
