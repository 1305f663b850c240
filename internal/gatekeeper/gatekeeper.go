// Package gatekeeper keeps users' subscriptions: registration and renewal, authentication by
// signature recovery, slot accounting and expiry.
package gatekeeper

import (
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Store is what the gatekeeper needs from the database.
type Store interface {
	User(id teos.UserID) (store.UserInfo, bool, error)
	UpdateUser(id teos.UserID, fn func(prev store.UserInfo, exists bool) (store.UserInfo, error)) (store.UserInfo, error)
	DeleteOutdatedUsers(height, expiryDelta uint32) ([]teos.UserID, error)
}

// Config holds the subscription policy.
type Config struct {
	Store                Store
	SubscriptionSlots    uint32
	SubscriptionDuration uint32 // blocks
	ExpiryDelta          uint32 // grace blocks after expiry before a user is deleted
	Admission            Admission
	Logger               *slog.Logger
}

// Gatekeeper decides who may use the tower.
type Gatekeeper struct {
	cfg    Config
	log    *slog.Logger
	height atomic.Uint32 // last processed block height
}

// New returns a gatekeeper whose current height is height.
func New(cfg Config, height uint32) *Gatekeeper {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gatekeeper{cfg: cfg, log: log.With("component", "gatekeeper")}
	g.height.Store(height)
	return g
}

// Height is the last block height the gatekeeper has seen.
func (g *Gatekeeper) Height() uint32 { return g.height.Load() }

// SetHeight sets the current height (used when the chain moves without a full block event).
func (g *Gatekeeper) SetHeight(h uint32) { g.height.Store(h) }

// Register adds a user or renews their subscription: slots are added and the expiry extended
// from the old expiry (not from now), as rust-teos does. The start height never changes.
func (g *Gatekeeper) Register(id teos.UserID) (store.UserInfo, error) {
	if err := g.admit(id); err != nil {
		return store.UserInfo{}, err
	}
	h := g.Height()
	slots, duration := g.cfg.SubscriptionSlots, g.cfg.SubscriptionDuration
	info, err := g.cfg.Store.UpdateUser(id, func(prev store.UserInfo, exists bool) (store.UserInfo, error) {
		if !exists {
			return store.UserInfo{
				AvailableSlots:     slots,
				SubscriptionStart:  h,
				SubscriptionExpiry: saturatingAdd(h, duration),
			}, nil
		}
		if uint64(prev.AvailableSlots)+uint64(slots) > math.MaxUint32 {
			return prev, ErrMaxSlots
		}
		prev.AvailableSlots += slots
		prev.SubscriptionExpiry = saturatingAdd(prev.SubscriptionExpiry, duration)
		return prev, nil
	})
	if err != nil {
		return store.UserInfo{}, err
	}
	g.log.Debug("user registered", "user_id", id, "slots", info.AvailableSlots, "expiry", info.SubscriptionExpiry)
	return info, nil
}

// Authenticate recovers the signer of msg and checks they are registered.
func (g *Gatekeeper) Authenticate(msg []byte, sig string) (teos.UserID, store.UserInfo, error) {
	id, err := wtcrypto.RecoverUserID(msg, sig)
	if err != nil {
		return id, store.UserInfo{}, ErrAuthenticationFailed
	}
	info, err := g.AuthenticateUser(id)
	return id, info, err
}

// AuthenticateUser is Authenticate's second half, for a signer already recovered: it checks
// id is registered.
func (g *Gatekeeper) AuthenticateUser(id teos.UserID) (store.UserInfo, error) {
	info, ok, err := g.cfg.Store.User(id)
	if err != nil {
		return info, fmt.Errorf("load user %s: %w", id, err)
	}
	if !ok {
		return info, ErrAuthenticationFailed
	}
	return info, nil
}

// CheckExpiry returns a *SubscriptionExpiredError when the subscription has expired at the
// current height.
func (g *Gatekeeper) CheckExpiry(info store.UserInfo) error {
	return g.CheckExpiryAt(info, g.Height())
}

// CheckExpiryAt is CheckExpiry at a given height (expired means height >= expiry).
func (g *Gatekeeper) CheckExpiryAt(info store.UserInfo, height uint32) error {
	if height >= info.SubscriptionExpiry {
		return &SubscriptionExpiredError{Expiry: info.SubscriptionExpiry}
	}
	return nil
}

// ChargeAppointment returns the slot policy for storing an appointment of blobLen bytes: it
// charges (or refunds) the difference with the blob it replaces. It is pure, so the store may
// run it more than once.
func (g *Gatekeeper) ChargeAppointment(blobLen int) func(user store.UserInfo, prevBlobLen int, replacing bool) (store.UserInfo, error) {
	return func(user store.UserInfo, prevBlobLen int, replacing bool) (store.UserInfo, error) {
		need := int64(teos.Slots(blobLen))
		if replacing {
			need -= int64(teos.Slots(prevBlobLen))
		}
		if need > int64(user.AvailableSlots) {
			return user, ErrNotEnoughSlots
		}
		// A refund saturates, as the store's do: renewals since the charge may have filled
		// the counter, and a wrap would leave the user with almost no slots.
		user.AvailableSlots = uint32(min(int64(user.AvailableSlots)-need, math.MaxUint32))
		return user, nil
	}
}

// DeleteOutdatedUsers removes users whose expiry plus grace has passed at height, with all
// their appointments and trackers.
func (g *Gatekeeper) DeleteOutdatedUsers(height uint32) ([]teos.UserID, error) {
	ids, err := g.cfg.Store.DeleteOutdatedUsers(height, g.cfg.ExpiryDelta)
	if err != nil {
		return nil, fmt.Errorf("delete outdated users: %w", err)
	}
	for _, id := range ids {
		g.log.Info("user outdated and deleted", "user_id", id, "height", height)
	}
	return ids, nil
}

func saturatingAdd(a, b uint32) uint32 {
	if a > math.MaxUint32-b {
		return math.MaxUint32
	}
	return a + b
}
