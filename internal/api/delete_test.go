package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

const msgDeleteTriggered = "The provided appointment has already been triggered and cannot be deleted"

func (u user) signDelete(loc teos.Locator) string { return u.sign(teos.DeleteAppointmentMessage(loc)) }

func deleteReply(s *stack, loc teos.Locator, userSig string, height, slots, expiry uint32) string {
	return fmt.Sprintf(`{"locator":"%s","deletion_block":%d,"signature":"%s","available_slots":%d,"subscription_expiry":%d}`,
		loc, height, wtcrypto.SignMessage(teos.DeletionReceiptBytes(userSig, height), s.towerKey), slots, expiry)
}

func TestDeleteAppointmentRefundsAndSignsReceipt(t *testing.T) {
	s := newStack(t)
	alice, bob, eve := newUser("alice"), newUser("bob"), newUser("eve")
	s.register(t, alice)
	s.register(t, bob)
	a := appointment(1, []byte{1, 2, 3})
	s.add(t, alice, a)
	s.add(t, bob, a) // same locator, another user's appointment
	if got := s.userInfo(t, alice).AvailableSlots; got != testSlots-1 {
		t.Fatalf("alice has %d slots after one add, want %d", got, testSlots-1)
	}

	// Another user's signature: that user has no such appointment, whoever else does.
	s.expectError(t, "/delete_appointment", getBody(a.Locator, eve.signDelete(a.Locator)), http.StatusUnauthorized, msgGetUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)
	s.expectError(t, "/delete_appointment", getBody(locator(9), bob.signDelete(locator(9))), http.StatusNotFound, msgNotFound, teos.ErrCodeAppointmentNotFound)
	// A get_appointment signature does not delete.
	s.expectError(t, "/delete_appointment", getBody(a.Locator, alice.signGet(a.Locator)), http.StatusUnauthorized, msgGetUnauthorized, teos.ErrCodeInvalidSignatureOrSubscriptionError)

	sig := alice.signDelete(a.Locator)
	s.expectOK(t, "/delete_appointment", getBody(a.Locator, sig), deleteReply(s, a.Locator, sig, testHeight, testSlots, testExpiry))
	if got := s.userInfo(t, alice).AvailableSlots; got != testSlots {
		t.Fatalf("alice has %d slots after the deletion, want the refund back to %d", got, testSlots)
	}
	s.expectError(t, "/get_appointment", getBody(a.Locator, alice.signGet(a.Locator)), http.StatusNotFound, msgNotFound, teos.ErrCodeAppointmentNotFound)
	s.expectError(t, "/delete_appointment", getBody(a.Locator, sig), http.StatusNotFound, msgNotFound, teos.ErrCodeAppointmentNotFound)
	// Bob's appointment under the same locator is untouched.
	if status, body := s.post(t, "/get_appointment", getBody(a.Locator, bob.signGet(a.Locator))); status != http.StatusOK {
		t.Fatalf("bob's appointment after alice's deletion: %d %s", status, body)
	}
}

func TestDeleteAppointmentRefusesTracked(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	a := appointment(1, []byte{1})
	s.add(t, alice, a)
	s.putTracker(t, alice, a.Locator, chainhash.Hash{1}, chainhash.Hash{2}, []byte{0xee})
	s.expectError(t, "/delete_appointment", getBody(a.Locator, alice.signDelete(a.Locator)), http.StatusBadRequest, msgDeleteTriggered, teos.ErrCodeAppointmentAlreadyTriggered)
}

// The body is get_appointment's, so it is refused exactly as get_appointment refuses it.
func TestDeleteAppointmentBodyAsGetAppointment(t *testing.T) {
	s := newStack(t)
	alice := newUser("alice")
	s.register(t, alice)
	for _, body := range []string{
		`{"locator":"","signature":"x"}`,
		`{"locator":"00","signature":"x"}`,
		`{"locator":"0g","signature":"x"}`,
		`{"signature":"x"}`,
		`{"locator":"` + locator(1).String() + `","signature":""}`,
		`[]`,
		`{`,
	} {
		gs, gb := s.post(t, "/get_appointment", body)
		ds, db := s.post(t, "/delete_appointment", body)
		if gs != ds || gb != db {
			t.Errorf("%s: delete_appointment answered %d %s, get_appointment %d %s", body, ds, db, gs, gb)
		}
	}
	s.reachable.Store(false)
	s.expectError(t, "/delete_appointment", getBody(locator(1), alice.signDelete(locator(1))), http.StatusServiceUnavailable, msgUnavailable, teos.ErrCodeServiceUnavailable)
}
