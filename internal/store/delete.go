package store

import (
	"errors"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
)

// ErrTriggered means the appointment has a tracker: its penalty is in flight.
var ErrTriggered = errors.New("appointment has a tracker")

// DeleteUserAppointment deletes user's appointment id and refunds its slots to user, in one
// transaction of the group commit, if policy (called with the owner's record, may be nil)
// agrees. It fails with ErrNotFound if user has no such appointment, ErrTriggered if it has
// a tracker (nothing is deleted then), and ErrUserNotFound if user is not registered. It
// returns the owner's record after the refund.
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
		if policy != nil {
			if err := policy(info); err != nil {
				return refusal{err}
			}
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
		if b.trackers.Get(id[:]) != nil {
			return refusal{ErrTriggered}
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
