package main

import "context"

// deleteAppointment asks the tower to forget one of the user's appointments (after a channel
// closed) and give its slots back; the deletion receipt is verified against the tower id.
func (a *app) deleteAppointment(ctx context.Context, args []string) error {
	loc, err := locatorArg("delete", args)
	if err != nil {
		return err
	}
	t, _, _, err := a.connect(ctx, false)
	if err != nil {
		return err
	}
	r, err := t.DeleteAppointment(ctx, loc)
	if err != nil {
		return err
	}
	return a.printJSON(struct {
		Locator            string `json:"locator"`
		DeletionBlock      uint32 `json:"deletion_block"`
		Signature          string `json:"signature"`
		UserSignature      string `json:"user_signature"`
		AvailableSlots     uint32 `json:"available_slots"`
		SubscriptionExpiry uint32 `json:"subscription_expiry"`
	}{r.Locator.String(), r.DeletionBlock, r.TowerSignature, r.UserSignature, r.AvailableSlots, r.SubscriptionExpiry})
}
