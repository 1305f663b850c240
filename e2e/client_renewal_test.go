package e2e

import (
	"testing"

	"github.com/teos-go/teos/pkg/client"
)

// TestClientRenewalAfterSlotsUsed: a user who used every slot renews on a real tower, which
// adds its slots to the none left; the client accepts that receipt (it used to call the tower
// misbehaving, since the renewal holds no more slots than the first registration) and can
// add appointments again.
func TestClientRenewalAfterSlotsUsed(t *testing.T) {
	node := startNode(t)
	tw := newTower(t, node, "subscription_slots = 2\n")
	tw.start()
	ctx := t.Context()
	cl := client.New(tw.apiURL, tw.id, userKey(t))
	first, err := cl.Register(ctx)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	for range 2 {
		if _, err := cl.AddAppointment(ctx, randomAppointment(t, 100)); err != nil {
			t.Fatalf("AddAppointment: %v", err)
		}
	}
	if _, err := cl.AddAppointment(ctx, randomAppointment(t, 100)); err == nil {
		t.Fatal("an appointment past the slots was accepted")
	}
	renewed, err := cl.Register(ctx)
	if err != nil {
		t.Fatalf("renewal with every slot used: %v", err)
	}
	if renewed.AvailableSlots != first.AvailableSlots || renewed.SubscriptionExpiry <= first.SubscriptionExpiry {
		t.Fatalf("renewal %+v after %+v", renewed.RegistrationReceipt, first.RegistrationReceipt)
	}
	r, err := cl.AddAppointment(ctx, randomAppointment(t, 100))
	if err != nil || r.AvailableSlots != 1 {
		t.Fatalf("AddAppointment after the renewal: %+v %v", r, err)
	}
}
