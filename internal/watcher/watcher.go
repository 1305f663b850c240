// Package watcher holds the appointments that have not been triggered yet: it accepts and
// answers them for users, signs receipts, and looks their locators up in new blocks.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Store is what the watcher needs from the database.
type Store interface {
	UpsertAppointment(a *store.Appointment, fn func(user store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error)) (store.UserInfo, error)
	Appointment(id teos.UUID) (*store.Appointment, error)
	Tracker(id teos.UUID) (*store.Tracker, error)
	UserLocators(id teos.UserID) ([]teos.Locator, error)
	AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*store.Appointment, error)
	DeleteAppointments(ids []teos.UUID, refund bool) error
}

// Responder takes over breaches: it broadcasts the penalty and tracks it.
type Responder interface {
	// HandleBreach returns tracked=false when the penalty was rejected (the watcher then
	// deletes the appointment without refund). It is idempotent for a UUID that already has a
	// tracker. err is transient (bitcoind unreachable): retry later.
	HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (tracked bool, err error)
}

// Config wires the watcher to its collaborators.
type Config struct {
	Store      Store
	Gatekeeper *gatekeeper.Gatekeeper
	TowerKey   *btcec.PrivateKey
	Responder  Responder
	Logger     *slog.Logger
}

// Watcher accepts appointments and watches for their breaches.
type Watcher struct {
	store     Store
	gk        *gatekeeper.Gatekeeper
	key       *btcec.PrivateKey
	responder Responder
	log       *slog.Logger

	// mu guards the fields below; it is never held across store or responder calls.
	mu       sync.Mutex
	cache    locatorCache
	retry    map[teos.UUID]retryItem // add-time hand-overs to redo at the next block
	retrySeq uint64
	claimed  map[teos.UUID]struct{} // UUIDs being handed over right now
}

// New returns a watcher.
func New(cfg Config) *Watcher {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		store:     cfg.Store,
		gk:        cfg.Gatekeeper,
		key:       cfg.TowerKey,
		responder: cfg.Responder,
		log:       log.With("component", "watcher"),
		retry:     make(map[teos.UUID]retryItem),
		claimed:   make(map[teos.UUID]struct{}),
	}
}

// TowerID is the tower's public key.
func (w *Watcher) TowerID() teos.UserID { return teos.UserIDFromPubKey(w.key.PubKey()) }

// Registration is a signed registration receipt.
type Registration struct {
	teos.RegistrationReceipt
	Signature string
}

// Register registers or renews userID and signs the receipt.
func (w *Watcher) Register(userID []byte) (*Registration, error) {
	id, err := teos.ParseUserID(userID)
	if err != nil {
		return nil, ErrInvalidUserID
	}
	info, err := w.gk.Register(id)
	if err != nil {
		return nil, err
	}
	r := &Registration{RegistrationReceipt: teos.RegistrationReceipt{
		UserID:             id,
		AvailableSlots:     info.AvailableSlots,
		SubscriptionStart:  info.SubscriptionStart,
		SubscriptionExpiry: info.SubscriptionExpiry,
	}}
	r.Signature = wtcrypto.SignMessage(r.SignedBytes(), w.key)
	return r, nil
}

// Accepted is the answer to an accepted appointment.
type Accepted struct {
	Locator            teos.Locator
	StartBlock         uint32
	Signature          string // tower's receipt signature
	AvailableSlots     uint32
	SubscriptionExpiry uint32
}

// AddAppointment authenticates the user, charges their slots and stores the appointment in one
// durable transaction, then signs the receipt. Checks follow rust-teos's order: signature,
// expiry, already triggered, slots. If the dispute was mined in the last CacheBlocks blocks,
// the stored appointment is handed to the responder before the receipt is returned (see
// handOverAtAdd); the request succeeds whatever the outcome, and slots are never refunded.
func (w *Watcher) AddAppointment(a teos.Appointment, userSig string) (*Accepted, error) {
	user, _, err := w.gk.Authenticate(a.SignedBytes(), userSig)
	if err != nil {
		return nil, err
	}
	start := w.gk.Height()
	rec := &store.Appointment{Appointment: a, UserID: user, UserSignature: userSig, StartBlock: start}
	charge := w.gk.ChargeAppointment(len(a.EncryptedBlob))
	info, err := w.store.UpsertAppointment(rec, func(u store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error) {
		if err := w.gk.CheckExpiryAt(u, start); err != nil {
			return u, err
		}
		if triggered {
			return u, ErrAlreadyTriggered
		}
		prevLen := 0
		if prev != nil {
			prevLen = len(prev.EncryptedBlob)
		}
		return charge(u, prevLen, prev != nil)
	})
	if err != nil {
		if errors.Is(err, store.ErrUserNotFound) {
			return nil, gatekeeper.ErrAuthenticationFailed
		}
		return nil, err
	}
	w.log.Debug("appointment accepted", "locator", a.Locator, "user_id", user, "start_block", start)
	// Checked only after the appointment is durable: BlockConnected caches a block before it
	// looks its locators up in the store, so one of the two paths always sees the breach.
	if d, ok := w.recentDispute(a.Locator); ok {
		w.handOverAtAdd(context.Background(), rec, d)
	}
	return &Accepted{
		Locator:            a.Locator,
		StartBlock:         start,
		Signature:          wtcrypto.SignMessage(teos.AppointmentReceiptBytes(userSig, start), w.key),
		AvailableSlots:     info.AvailableSlots,
		SubscriptionExpiry: info.SubscriptionExpiry,
	}, nil
}

// GetAppointment returns the caller's appointment for loc, and its tracker if it was triggered.
func (w *Watcher) GetAppointment(loc teos.Locator, userSig string) (*store.Appointment, *store.Tracker, error) {
	user, info, err := w.gk.Authenticate(teos.GetAppointmentMessage(loc), userSig)
	if err != nil {
		return nil, nil, err
	}
	if err := w.gk.CheckExpiry(info); err != nil {
		return nil, nil, err
	}
	id := teos.NewUUID(loc, user)
	a, err := w.store.Appointment(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load appointment %s: %w", id, err)
	}
	t, err := w.store.Tracker(id)
	if errors.Is(err, store.ErrNotFound) {
		return a, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load tracker %s: %w", id, err)
	}
	return a, t, nil
}

// SubscriptionInfo returns the caller's subscription and the locators of all their
// appointments, triggered or not.
func (w *Watcher) SubscriptionInfo(userSig string) (store.UserInfo, []teos.Locator, error) {
	user, info, err := w.gk.Authenticate(teos.GetSubscriptionInfoMessage, userSig)
	if err != nil {
		return info, nil, err
	}
	if err := w.gk.CheckExpiry(info); err != nil {
		return info, nil, err
	}
	locs, err := w.store.UserLocators(user)
	if err != nil {
		return info, nil, fmt.Errorf("load locators of %s: %w", user, err)
	}
	return info, locs, nil
}
