package store

import (
	"errors"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
)

// ErrTriggered means the appointment has a tracker: its penalty is in flight.
var ErrTriggered = errors.New("appointment has a tracker")

// DeleteUserAppointment deletes user's appointment id and refunds its slots to user, in one
// transaction of the group commit. It fails with ErrUserNotFound if user is not registered,
// ErrNotFound if user has no such appointment, ErrTriggered if it has a tracker, and with
// policy's error if policy (called inside the transaction with the owner's record, last; may
// be nil) refuses; nothing is written then. It returns the owner's record after the refund.
func (s *Store) DeleteUserAppointment(user teos.UserID, id teos.UUID, policy func(UserInfo) error) (UserInfo, error) {
	var out UserInfo
	err := s.batch(func(b *buckets) error {
		out = UserInfo{}
		info, ok, err := getUser(b, user)
		if err != nil {
			return err
		}
		if !ok {
			return refusal{ErrUserNotFound}
		}
		v := b.appointments.Get(id[:])
		if v == nil {
			return refusal{ErrNotFound}
		}
		_, owner, _, err := appointmentHead(v)
		if err != nil {
			return fmt.Errorf("appointment %s: %w", id, err)
		}
		if owner != user { // a UUID commits to its user, so only a corrupt file gets here
			return refusal{ErrNotFound}
		}
		// A tracker, or a queued hand-over: the dispute is mined and the penalty on its way.
		if b.trackers.Get(id[:]) != nil || b.handOvers.Get(id[:]) != nil {
			return refusal{ErrTriggered}
		}
		if policy != nil {
			if err := policy(info); err != nil {
				return refusal{err}
			}
		}
		d, err := deleteAppointment(b, id)
		if err != nil {
			return err
		}
		next := info
		next.AvailableSlots = addSaturating(info.AvailableSlots, teos.Slots(d.blobLen))
		if err := putUser(b, user, info, true, next); err != nil {
			return fmt.Errorf("refund user %s: %w", user, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return UserInfo{}, err
	}
	return out, nil
}
