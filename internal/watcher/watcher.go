// Package watcher holds the appointments that have not been triggered yet: it accepts and
// answers them for users, signs receipts, and looks their locators up in new blocks.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// Store is what the watcher needs from the database.
type Store interface {
	UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error)
	Appointment(id teos.UUID) (*store.Appointment, error)
	Tracker(id teos.UUID) (*store.Tracker, error)
	UserLocators(id teos.UserID) ([]teos.Locator, error)
	// AppointmentsByLocators may return a map with an error wrapping store.ErrCorrupt: the
	// readable matches, some records skipped.
	AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*store.Appointment, error)
	QueuedHandOversFrom(from teos.UUID, limit int) ([]store.QueuedHandOver, error)
	DropHandOvers(block chainhash.Hash) (int, error)
	ApplyChanges(c *store.Changes) error
}

// Responder takes over breaches: it broadcasts the penalty and tracks it. The watcher calls
// it from the chain goroutine only.
type Responder interface {
	// HandleBreach broadcasts the penalty and returns the tracker to store for it, which the
	// watcher commits with the rest of the run's changes; nil means the penalty was rejected
	// (the watcher then deletes the appointment without refund). It is only called for a UUID
	// without a tracker. err is transient (bitcoind unreachable): retry later.
	HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error)
	// BlockInChain reports whether bitcoind's best chain holds the block hash: asked about a
	// queued hand-over whose penalty was rejected (docs/PROTOCOL.md 8.5). err: ask again later.
	BlockInChain(ctx context.Context, hash chainhash.Hash) (bool, error)
}

// Config wires the watcher to its collaborators.
type Config struct {
	Store      Store
	Gatekeeper *gatekeeper.Gatekeeper
	TowerKey   *btcec.PrivateKey
	Responder  Responder
	Logger     *slog.Logger
	// Wake, if set, is the channel (capacity 1) HandOversQueued returns, so the composition
	// root can also signal it, e.g. when bitcoind is back and queued hand-overs can go out.
	Wake chan struct{}
	// BlocksFirst, if set, is waited on before a request's signature work and store work, so
	// a block being processed gets the CPU first. Wait must return within a bound of its own.
	BlocksFirst interface{ Wait() }
}

// Watcher accepts appointments and watches for their breaches.
type Watcher struct {
	store     Store
	gk        *gatekeeper.Gatekeeper
	key       *btcec.PrivateKey
	responder Responder
	log       *slog.Logger
	blocks    interface{ Wait() } // never nil
	queued    chan struct{}       // signalled when an add queued a hand-over; capacity 1
	drainFrom teos.UUID           // where the next HandOverQueued starts; chain goroutine only

	// mu guards the cache and inflight; it is never held across store or responder calls.
	mu       sync.Mutex
	cache    locatorCache
	inflight map[teos.Locator][]*inflightWrite // writes not over yet, by locator (inflight.go)
}

// New returns a watcher.
func New(cfg Config) *Watcher {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	queued := cfg.Wake
	if queued == nil {
		queued = make(chan struct{}, 1)
	}
	blocks := cfg.BlocksFirst
	if blocks == nil {
		blocks = noWait{}
	}
	return &Watcher{
		blocks:    blocks,
		store:     cfg.Store,
		gk:        cfg.Gatekeeper,
		key:       cfg.TowerKey,
		responder: cfg.Responder,
		log:       log.With("component", "watcher"),
		queued:    queued,
	}
}

type noWait struct{}

func (noWait) Wait() {}

// HandOversQueued receives a value after an add queued a hand-over; the chain monitor polls
// on it, and HandOverQueued then hands the queue over, instead of waiting for its next tick.
func (w *Watcher) HandOversQueued() <-chan struct{} { return w.queued }

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
	w.blocks.Wait()
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
// the same transaction queues the appointment for the chain goroutine, which hands it to the
// responder (HandOverQueued); the answer is the receipt whatever the hand-over's outcome, as
// in rust-teos, and slots are never refunded.
func (w *Watcher) AddAppointment(a teos.Appointment, userSig string) (*Accepted, error) {
	// The store checks the user again inside the write; this read keeps requests from
	// unregistered keys out of the single writer's queue.
	w.blocks.Wait()
	user, _, err := w.gk.Authenticate(a.SignedBytes(), userSig)
	if err != nil {
		return nil, err
	}
	iw := w.beginWrite([]teos.Locator{a.Locator}) // before the start height: see inflight.go
	start := w.gk.Height()
	rec := &store.Appointment{Appointment: a, UserID: user, UserSignature: userSig, StartBlock: start}
	var queued bool
	res, err := w.upsertAll(iw, []store.AppointmentUpsert{w.upsert(iw, rec, &queued)})
	if err != nil {
		return nil, addError(err)
	}
	if res[0].Err != nil {
		return nil, addError(res[0].Err)
	}
	queued = queued || res[0].Queued // the store found the dispute mined itself
	if queued {
		w.wake()
	}
	w.blocks.Wait() // a block may have come during the write: the receipt can wait for it
	return w.accepted(rec, res[0].User, queued), nil
}

// upsert is AddAppointment's store write for rec, whose locator the caller marked in flight
// (iw) before it read rec's start height. *queued tells, once the write is done, whether it
// queued a hand-over.
func (w *Watcher) upsert(iw *inflightWrite, rec *store.Appointment, queued *bool) store.AppointmentUpsert {
	return store.AppointmentUpsert{Appointment: rec, Policy: w.addPolicy(rec), HandOver: w.handOverFor(iw, rec.Locator, queued)}
}

// upsertAll stores items and then ends iw, the in-flight write marking their locators, also
// if the store panics: a mark left behind would hold up every block holding its locator.
func (w *Watcher) upsertAll(iw *inflightWrite, items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	defer w.endWrite(iw)
	return w.store.UpsertAppointments(items)
}

// handOverFor looks loc's dispute up in the locator cache from inside the store's write
// transaction. With loc marked in flight, either this finds the block mining the dispute or
// that block's lookup, which waits for the write, finds the appointment (inflight.go).
func (w *Watcher) handOverFor(iw *inflightWrite, loc teos.Locator, queued *bool) func() *store.HandOver {
	return func() *store.HandOver {
		d, ok := w.cachedDispute(iw, loc)
		*queued = ok
		if !ok {
			return nil
		}
		return &store.HandOver{Block: d.block, Dispute: d.serialize()}
	}
}

// wake tells the chain monitor a hand-over is queued.
func (w *Watcher) wake() {
	select {
	case w.queued <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// addPolicy is AddAppointment's check and charge, run inside the store transaction.
func (w *Watcher) addPolicy(rec *store.Appointment) store.AppointmentPolicy {
	charge := w.gk.ChargeAppointment(len(rec.EncryptedBlob))
	return func(u store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error) {
		if err := w.gk.CheckExpiryAt(u, rec.StartBlock); err != nil {
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
	}
}

// addError maps a store refusal to the error AddAppointment returns.
func addError(err error) error {
	if errors.Is(err, store.ErrUserNotFound) {
		return gatekeeper.ErrAuthenticationFailed
	}
	return err
}

// accepted signs the receipt of rec, which is durable.
func (w *Watcher) accepted(rec *store.Appointment, info store.UserInfo, queued bool) *Accepted {
	if queued {
		w.log.Info("appointment for a mined dispute queued for hand-over", "locator", rec.Locator, "user_id", rec.UserID)
	} else if w.log.Enabled(context.Background(), slog.LevelDebug) { // boxing the arguments allocates, on every add
		w.log.Debug("appointment accepted", "locator", rec.Locator, "user_id", rec.UserID, "start_block", rec.StartBlock)
	}
	return &Accepted{
		Locator:            rec.Locator,
		StartBlock:         rec.StartBlock,
		Signature:          wtcrypto.SignMessage(teos.AppointmentReceiptBytes(rec.UserSignature, rec.StartBlock), w.key),
		AvailableSlots:     info.AvailableSlots,
		SubscriptionExpiry: info.SubscriptionExpiry,
	}
}

// Item is one appointment of a batch with its user's signature. Trying the same items again
// (a held batch) reuses the signers recovered the first time.
type Item struct {
	Appointment teos.Appointment
	Signature   string

	signer recovered
}

// recovered is an item's signer, or why it has none, once recovered.
type recovered struct {
	done bool
	id   teos.UserID
	err  error
}

// Result is the outcome of one Item: Accepted, or Err as AddAppointment would return it.
type Result struct {
	Accepted *Accepted
	Err      error
}

// AddAppointments is AddAppointment for many items at once (possibly from many users): each
// is authenticated on its own, then all are stored in ONE store transaction in request order,
// so item k sees the slots the items before it left, and a later item with the same locator
// and user updates an earlier one. A store failure fails every item that got that far.
func (w *Watcher) AddAppointments(items []Item) []Result {
	results, _ := w.AddAppointmentsUnless(items, nil)
	return results
}

// AddAppointmentsUnless is AddAppointments, except that if authenticating an item fails with
// an error fault reports (a store fault, not an answer), nothing is written and that error is
// returned: the caller can wait the fault out and run the whole batch again, which it could
// not do once the other items were committed.
func (w *Watcher) AddAppointmentsUnless(items []Item, fault func(error) bool) ([]Result, error) {
	results := make([]Result, len(items))
	w.blocks.Wait()
	users := w.authenticateAll(items, results)
	if fault != nil {
		for _, r := range results {
			if r.Err != nil && fault(r.Err) {
				return nil, r.Err
			}
		}
	}
	var (
		upserts []store.AppointmentUpsert
		index   []int  // upserts[j] is items[index[j]]
		queued  []bool // queued[j]: upserts[j] queued a hand-over
		locs    []teos.Locator
	)
	for i := range items {
		if results[i].Err == nil {
			index = append(index, i)
			locs = append(locs, items[i].Appointment.Locator)
		}
	}
	if len(index) == 0 {
		return results, nil
	}
	iw := w.beginWrite(locs) // before the start height: see inflight.go
	start := w.gk.Height()
	queued = make([]bool, len(index))
	for j, i := range index {
		it := items[i]
		rec := &store.Appointment{Appointment: it.Appointment, UserID: users[i], UserSignature: it.Signature, StartBlock: start}
		upserts = append(upserts, w.upsert(iw, rec, &queued[j]))
	}
	stored, err := w.upsertAll(iw, upserts)
	if err != nil {
		for _, i := range index {
			results[i].Err = err
		}
		return results, nil
	}
	// Receipts are signed in parallel too.
	w.blocks.Wait()
	parallel(len(index), func(j int) {
		i := index[j]
		if stored[j].Err != nil {
			results[i].Err = addError(stored[j].Err)
			return
		}
		queued[j] = queued[j] || stored[j].Queued
		results[i].Accepted = w.accepted(upserts[j].Appointment, stored[j].User, queued[j])
	})
	for j := range index {
		if stored[j].Err == nil && queued[j] {
			w.wake()
			break
		}
	}
	return results, nil
}

// authenticateAll recovers every item's signer, spread over the CPUs since recovery is the
// costly part; failures land in results.
func (w *Watcher) authenticateAll(items []Item, results []Result) []teos.UserID {
	users := make([]teos.UserID, len(items))
	parallel(len(items), func(i int) {
		s := &items[i].signer
		if !s.done {
			s.id, s.err = wtcrypto.RecoverUserID(items[i].Appointment.SignedBytes(), items[i].Signature)
			if s.err != nil {
				s.err = gatekeeper.ErrAuthenticationFailed
			}
			s.done = true
		}
		users[i], results[i].Err = s.id, s.err
		if s.err == nil {
			_, results[i].Err = w.gk.AuthenticateUser(s.id)
		}
	})
	return users
}

// parallel calls fn(0..n-1) on up to GOMAXPROCS goroutines and waits for all of them.
func parallel(n int, fn func(i int)) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// GetAppointment returns the caller's appointment for loc, and its tracker if it was triggered.
func (w *Watcher) GetAppointment(loc teos.Locator, userSig string) (*store.Appointment, *store.Tracker, error) {
	w.blocks.Wait()
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
	w.blocks.Wait()
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
