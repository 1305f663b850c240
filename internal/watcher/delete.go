package watcher

import (
	"errors"
	"fmt"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// deleteStore is what DeleteAppointment needs on top of Store; *store.Store has it.
type deleteStore interface {
	DeleteUserAppointment(user teos.UserID, id teos.UUID, policy func(store.UserInfo) error) (store.UserInfo, error)
}

// Deleted is the answer to an accepted deletion.
type Deleted struct {
	Locator            teos.Locator
	DeletionBlock      uint32
	Signature          string // tower's signature of teos.DeletionReceiptBytes
	AvailableSlots     uint32
	SubscriptionExpiry uint32
}

// CanDelete reports whether DeleteAppointment is served: the store can delete appointments.
func (w *Watcher) CanDelete() bool {
	_, ok := w.store.(deleteStore)
	return ok
}

// DeleteAppointment deletes the caller's appointment for loc and refunds its slots (the
// BOLT13 draft's delete_appointment). Only an appointment that is still watched can go: once
// its dispute is mined (tracked, or in a recent block and so being handed over) the penalty is
// in flight, and a deletion would stop the tower rebroadcasting it or following its
// confirmations, which is what a thief holding the user's key would want and never what an
// honest user needs: a channel closed cooperatively has no mined dispute. Those get
// ErrAlreadyTriggered. Checks follow get_appointment's: signature, expiry, then not found.
func (w *Watcher) DeleteAppointment(loc teos.Locator, userSig string) (*Deleted, error) {
	ds, ok := w.store.(deleteStore)
	if !ok {
		return nil, ErrDeleteUnsupported
	}
	w.blocks.Wait()
	user, info, err := w.gk.Authenticate(teos.DeleteAppointmentMessage(loc), userSig)
	if err != nil {
		return nil, err
	}
	if err := w.gk.CheckExpiry(info); err != nil {
		return nil, err
	}
	id := teos.NewUUID(loc, user)
	height := w.gk.Height()
	// The locator cache is read inside the store's write, as an add's hand-over check is, with
	// the locator marked in flight: either this deletion sees the dispute and refuses, or the
	// block's lookup finds the appointment gone (inflight.go).
	next, err := func() (store.UserInfo, error) {
		iw := w.beginWrite([]teos.Locator{loc})
		defer w.endWrite(iw)
		return ds.DeleteUserAppointment(user, id, func(u store.UserInfo) error {
			if err := w.gk.CheckExpiryAt(u, height); err != nil {
				return err
			}
			if _, mined := w.cachedDispute(iw, loc); mined {
				return ErrAlreadyTriggered
			}
			return nil
		})
	}()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrUserNotFound): // the latter: outdated since Authenticate
		return nil, ErrNotFound
	case errors.Is(err, store.ErrTriggered), errors.Is(err, ErrAlreadyTriggered):
		return nil, ErrAlreadyTriggered
	default: // a *gatekeeper.SubscriptionExpiredError from the policy, or a store failure
		return nil, fmt.Errorf("delete appointment %s: %w", id, err)
	}
	w.log.Debug("appointment deleted", "locator", loc, "user_id", user, "height", height)
	return &Deleted{
		Locator:            loc,
		DeletionBlock:      height,
		Signature:          wtcrypto.SignMessage(teos.DeletionReceiptBytes(userSig, height), w.key),
		AvailableSlots:     next.AvailableSlots,
		SubscriptionExpiry: next.SubscriptionExpiry,
	}, nil
}
