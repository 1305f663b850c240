package gatekeeper

import (
	"errors"
	"fmt"
)

var (
	// ErrAuthenticationFailed means the signature did not recover to a registered user.
	ErrAuthenticationFailed = errors.New("user cannot be authenticated")
	// ErrMaxSlots means a renewal would overflow the user's slot counter.
	ErrMaxSlots = errors.New("subscription maximum slots count reached")
	// ErrNotEnoughSlots means the user has too few slots left for the appointment.
	ErrNotEnoughSlots = errors.New("not enough slots available")
)

// SubscriptionExpiredError is returned for a user whose subscription has expired (but who is
// still stored, within the grace period).
type SubscriptionExpiredError struct{ Expiry uint32 }

func (e *SubscriptionExpiredError) Error() string {
	return fmt.Sprintf("subscription expired at %d", e.Expiry)
}
