package watcher

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func TestBlockConnectedHandsBreachOver(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	b := newBreach(1)
	f.add(u, b.loc, b.blob)
	id := uuid(b.loc, u)

	f.connect(newTx(100), newTx(101)) // no dispute
	if n := f.resp.totalCalls(); n != 0 {
		t.Fatalf("%d HandleBreach calls for a block without disputes", n)
	}

	f.connect(newTx(102), b.dispute, newTx(103))
	got, ok := f.resp.breachOf(id)
	if !ok {
		t.Fatal("breach not handed to the responder")
	}
	if got.dispute.TxHash() != b.dispute.TxHash() {
		t.Errorf("dispute %s, want %s", got.dispute.TxHash(), b.dispute.TxHash())
	}
	if !bytes.Equal(serialize(got.penalty), serialize(b.penalty)) {
		t.Errorf("penalty %s, want %s", got.penalty.TxHash(), b.penalty.TxHash())
	}
	if !f.stored(id) || !f.hasTracker(id) {
		t.Error("a tracked breach must keep its appointment and have a tracker")
	}

	f.connect(b.dispute) // the same dispute again (as after a reorg): already tracked
	if n := f.resp.callCount(id); n != 1 {
		t.Errorf("HandleBreach called %d times, want 1", n)
	}
}

func TestBlockConnectedSharedLocator(t *testing.T) {
	f := newFixture(t)
	b := newBreach(1)
	other := spend(b.dispute, 777) // the second user has a different penalty for the same dispute
	u1, u2 := f.newUser(), f.newUser()
	f.add(u1, b.loc, b.blob)
	f.add(u2, b.loc, wtcrypto.Encrypt(serialize(other), b.dispute.TxHash()))

	f.connect(b.dispute)
	for _, c := range []struct {
		u    testUser
		want *wire.MsgTx
	}{{u1, b.penalty}, {u2, other}} {
		got, ok := f.resp.breachOf(uuid(b.loc, c.u))
		if !ok {
			t.Errorf("user %s: breach not handed over", c.u.id)
			continue
		}
		if got.penalty.TxHash() != c.want.TxHash() {
			t.Errorf("user %s: penalty %s, want %s", c.u.id, got.penalty.TxHash(), c.want.TxHash())
		}
	}
}

// TestBlockConnectedDeletesInvalidWithRefund: appointments found invalid in a block are
// deleted and their slots given back, as rust-teos v0.2 does (the valid one keeps its slot).
func TestBlockConnectedDeletesInvalidWithRefund(t *testing.T) {
	f := newFixture(t)
	b1, b2 := newBreach(1), newBreach(2)
	valid, garbage, notTx, rejected := f.newUser(), f.newUser(), f.newUser(), f.newUser()
	f.add(valid, b1.loc, b1.blob)
	f.add(garbage, b1.loc, bytes.Repeat([]byte{0xaa}, 200))                                       // tag does not verify
	f.add(notTx, b1.loc, wtcrypto.Encrypt(append(serialize(b1.penalty), 0), b1.dispute.TxHash())) // trailing byte
	f.add(rejected, b2.loc, b2.blob)                                                              // a valid blob the responder refuses
	f.resp.reject[uuid(b2.loc, rejected)] = true
	for _, u := range []testUser{valid, garbage, notTx, rejected} {
		if got := f.slots(u); got != testSlots-1 {
			t.Fatalf("slots after add = %d, want %d", got, testSlots-1)
		}
	}

	f.connect(b1.dispute, b2.dispute)

	if _, ok := f.resp.breachOf(uuid(b1.loc, valid)); !ok || !f.stored(uuid(b1.loc, valid)) {
		t.Error("the valid appointment was not handed over and kept")
	}
	for name, u := range map[string]testUser{"undecryptable": garbage, "not a transaction": notTx} {
		id := uuid(b1.loc, u)
		if n := f.resp.callCount(id); n != 0 {
			t.Errorf("%s: handed to the responder %d times", name, n)
		}
		if f.stored(id) {
			t.Errorf("%s: still stored", name)
		}
		if got := f.slots(u); got != testSlots {
			t.Errorf("%s: slots = %d, want %d (refunded)", name, got, testSlots)
		}
	}
	id := uuid(b2.loc, rejected)
	if f.resp.callCount(id) != 1 || f.stored(id) || f.hasTracker(id) {
		t.Error("a rejected penalty's appointment must be handed over once and then deleted")
	}
	if got := f.slots(rejected); got != testSlots {
		t.Errorf("rejected: slots = %d, want %d (refunded)", got, testSlots)
	}
	if got := f.slots(valid); got != testSlots-1 {
		t.Errorf("valid: slots = %d, want %d (kept while it is tracked)", got, testSlots-1)
	}
}

func TestBlockConnectedTransientErrorRedo(t *testing.T) {
	f := newFixture(t)
	bad, b1, b2 := newBreach(1), newBreach(2), newBreach(3)
	u := f.newUser()
	f.add(u, bad.loc, []byte("garbage"))
	f.add(u, b1.loc, b1.blob)
	f.add(u, b2.loc, b2.blob)
	f.resp.failNext[uuid(b2.loc, u)] = 1

	blk := f.block(bad.dispute, b1.dispute, b2.dispute)
	err := f.w.BlockConnected(t.Context(), blk, testHeight+1)
	if !errors.Is(err, errUnreachable) {
		t.Fatalf("BlockConnected = %v, want %v", err, errUnreachable)
	}
	if f.stored(uuid(bad.loc, u)) {
		t.Error("the invalid appointment found before the error was not deleted")
	}
	if !f.hasTracker(uuid(b1.loc, u)) || f.hasTracker(uuid(b2.loc, u)) {
		t.Fatal("want the first breach tracked and the failed one not")
	}

	if err := f.w.BlockConnected(t.Context(), blk, testHeight+1); err != nil {
		t.Fatalf("redo: %v", err)
	}
	if n := f.resp.callCount(uuid(b1.loc, u)); n != 1 {
		t.Errorf("the breach tracked before the error was handed over %d times, want 1", n)
	}
	if n := f.resp.callCount(uuid(b2.loc, u)); n != 2 || !f.hasTracker(uuid(b2.loc, u)) {
		t.Errorf("the failed breach: %d calls, want 2 and a tracker", n)
	}
	for id, n := range f.resp.created {
		if n != 1 {
			t.Errorf("%s: %d trackers created", id, n)
		}
	}
}

// An appointment whose dispute is in a recent block is queued, in the store, for the chain
// goroutine; the add itself never calls the responder and answers the usual receipt.
func TestAddAppointmentAfterDisputeMined(t *testing.T) {
	for _, tc := range []struct {
		name       string
		blob       func(b breachCase) []byte
		reject     bool
		wantStored bool
		wantCalls  int
	}{
		{"valid", func(b breachCase) []byte { return b.blob }, false, true, 1},
		{"undecryptable", func(breachCase) []byte { return bytes.Repeat([]byte{1}, 100) }, false, false, 0},
		{"not a transaction", func(b breachCase) []byte { return wtcrypto.Encrypt([]byte("hello"), b.dispute.TxHash()) }, false, false, 0},
		{"rejected", func(b breachCase) []byte { return b.blob }, true, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			u := f.newUser()
			b := newBreach(1)
			id := uuid(b.loc, u)
			f.resp.reject[id] = tc.reject
			f.connect(b.dispute)
			f.woken() // drop any earlier signal

			acc := f.add(u, b.loc, tc.blob(b))
			if acc.Locator != b.loc || acc.StartBlock != testHeight || acc.AvailableSlots != testSlots-1 || acc.Signature == "" {
				t.Errorf("receipt %+v: want locator %s, start %d and %d slots", acc, b.loc, testHeight, testSlots-1)
			}
			if n := f.resp.totalCalls(); n != 0 {
				t.Fatalf("the add called the responder %d times", n)
			}
			if q := f.queued(); !slices.Equal(q, []teos.UUID{id}) || !f.stored(id) {
				t.Fatalf("queued %v, stored %v; want the appointment stored and queued", q, f.stored(id))
			}
			if !f.woken() {
				t.Error("the chain monitor was not woken")
			}

			f.handOverQueued()
			if got := f.resp.callCount(id); got != tc.wantCalls {
				t.Errorf("HandleBreach calls = %d, want %d", got, tc.wantCalls)
			}
			if got := f.stored(id); got != tc.wantStored {
				t.Errorf("stored = %v, want %v", got, tc.wantStored)
			}
			if got := f.hasTracker(id); got != tc.wantStored {
				t.Errorf("tracker = %v, want %v", got, tc.wantStored)
			}
			if q := f.queued(); len(q) != 0 {
				t.Errorf("still queued: %v", q)
			}
			if got := f.slots(u); got != testSlots-1 {
				t.Errorf("slots = %d, want %d (never refunded)", got, testSlots-1)
			}
		})
	}
}

// A batch queues its late items like single adds.
func TestAddAppointmentsQueuesLateItems(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	late, early := newBreach(1), newBreach(2)
	f.connect(late.dispute)
	f.woken()
	var items []Item
	for _, b := range []breachCase{late, early} {
		a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
		items = append(items, Item{Appointment: a, Signature: wtcrypto.SignMessage(a.SignedBytes(), u.sk)})
	}
	for i, r := range f.w.AddAppointments(items) {
		if r.Err != nil || r.Accepted == nil {
			t.Fatalf("item %d: %+v", i, r)
		}
	}
	if q := f.queued(); !slices.Equal(q, []teos.UUID{uuid(late.loc, u)}) || !f.woken() {
		t.Fatalf("queued %v; want only the late item, and a wake-up", q)
	}
	f.handOverQueued()
	if !f.hasTracker(uuid(late.loc, u)) || f.hasTracker(uuid(early.loc, u)) {
		t.Error("want the late item tracked and the other one watched")
	}
}

// A queued hand-over that fails stays queued for the next call; blocks do not touch the queue.
func TestQueuedHandOverTransientErrorRetried(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	b := newBreach(1)
	id := uuid(b.loc, u)
	f.connect(b.dispute)
	f.resp.failNext[id] = 2

	f.add(u, b.loc, b.blob)
	for range 2 {
		if err := f.w.HandOverQueued(t.Context()); !errors.Is(err, errUnreachable) {
			t.Fatalf("HandOverQueued = %v, want %v", err, errUnreachable)
		}
		if !f.stored(id) || f.hasTracker(id) || len(f.queued()) != 1 {
			t.Fatal("after a transient error the appointment must stay stored, untracked and queued")
		}
		f.connect(newTx(50 + f.nonce))
	}
	if n := f.resp.callCount(id); n != 2 {
		t.Fatalf("%d calls, want 2: blocks must leave the queue to HandOverQueued", n)
	}
	f.handOverQueued()
	if !f.hasTracker(id) || f.resp.callCount(id) != 3 || len(f.queued()) != 0 {
		t.Fatalf("tracker %v after %d calls, queue %v; want a tracker after 3 and an empty queue", f.hasTracker(id), f.resp.callCount(id), f.queued())
	}
	f.handOverQueued()
	if n := f.resp.callCount(id); n != 3 {
		t.Errorf("queue not drained: %d calls", n)
	}
}

// A long queue is handed over maxHandOversPerRun at a time, each call waking the monitor for
// the next, and a failing entry is retried first.
func TestQueuedHandOversInTurns(t *testing.T) {
	f := newFixture(t)
	const n = 2*maxHandOversPerRun + 10
	var disputes []*wire.MsgTx
	var cases []breachCase
	for i := range n {
		c := newBreach(uint32(5000 + i))
		cases, disputes = append(cases, c), append(disputes, c.dispute)
	}
	f.connect(disputes...)
	users := make([]testUser, 3)
	for i := range users {
		users[i] = f.newUser()
	}
	// The gatekeeper gives each user testSlots slots: spread the appointments over users.
	for len(users)*testSlots < n {
		users = append(users, f.newUser())
	}
	for i, c := range cases {
		f.add(users[i%len(users)], c.loc, c.blob)
	}
	f.woken()
	failing := f.queued()[maxHandOversPerRun+3]
	f.resp.failNext[failing] = 1

	f.handOverQueued()
	if got := len(f.queued()); got != n-maxHandOversPerRun || !f.woken() {
		t.Fatalf("after one call %d queued (want %d) and a wake-up", got, n-maxHandOversPerRun)
	}
	if err := f.w.HandOverQueued(t.Context()); !errors.Is(err, errUnreachable) {
		t.Fatalf("second call = %v, want the failure", err)
	}
	if got := len(f.queued()); got != n-maxHandOversPerRun-3 {
		t.Fatalf("after the failure %d queued, want %d", got, n-maxHandOversPerRun-3)
	}
	f.handOverQueued()
	if f.resp.callCount(failing) != 2 || !f.hasTracker(failing) {
		t.Fatalf("the failed entry: %d calls, tracker %v; want it retried first", f.resp.callCount(failing), f.hasTracker(failing))
	}
	for range 2 {
		f.handOverQueued()
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("%d still queued", len(q))
	}
	for id, c := range f.resp.created {
		if c != 1 {
			t.Errorf("%s: %d trackers", id, c)
		}
	}
	if len(f.resp.created) != n {
		t.Errorf("%d trackers, want %d", len(f.resp.created), n)
	}
}

// The queue lives in the store: a restarted watcher hands the queued appointment over.
func TestQueuedHandOverSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	b := newBreach(1)
	id := uuid(b.loc, u)
	f.connect(b.dispute)
	f.add(u, b.loc, b.blob)

	path := f.store.Path()
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f.store = s
	f.w = New(Config{Store: s, Gatekeeper: f.w.gk, TowerKey: f.w.key, Responder: f.resp}) // an empty locator cache
	f.handOverQueued()
	if got, ok := f.resp.breachOf(id); !ok || got.penalty.TxHash() != b.penalty.TxHash() {
		t.Fatal("the queued hand-over was lost with the restart")
	}
	if !f.hasTracker(id) || len(f.queued()) != 0 {
		t.Fatal("want a tracker and an empty queue")
	}
}

func TestDisconnectDropsQueuedHandOverOfReorgedDispute(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	b := newBreach(1)
	id := uuid(b.loc, u)
	blk := f.connect(b.dispute)
	f.add(u, b.loc, b.blob)

	if err := f.w.BlockDisconnected(t.Context(), &blk.Header, testHeight+1); err != nil {
		t.Fatal(err)
	}
	f.tip = blk.Header.PrevBlock
	f.connect(newTx(60))
	f.handOverQueued()
	if n := f.resp.callCount(id); n != 0 || len(f.queued()) != 0 {
		t.Fatalf("the dispute was reorged out, yet: %d calls, queue %v", n, f.queued())
	}
	if !f.stored(id) {
		t.Fatal("the appointment must stay stored")
	}
	f.connect(b.dispute) // re-mined: caught by the block path
	if !f.hasTracker(id) {
		t.Error("the re-mined dispute was not handled")
	}
}

func TestLocatorCacheWindow(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	first, second, reorged := newBreach(1), newBreach(2), newBreach(3)
	f.connect(first.dispute)
	f.connect(second.dispute)
	for range CacheBlocks - 1 { // first is now CacheBlocks+1 blocks deep
		f.connect(newTx(70 + f.nonce))
	}
	f.add(u, first.loc, first.blob)
	if n := f.resp.callCount(uuid(first.loc, u)); n != 0 || !f.stored(uuid(first.loc, u)) {
		t.Errorf("dispute %d blocks deep: %d calls, want it only stored", CacheBlocks+1, n)
	}
	f.add(u, second.loc, second.blob)
	f.handOverQueued()
	if !f.hasTracker(uuid(second.loc, u)) {
		t.Errorf("dispute %d blocks deep: not handed over", CacheBlocks)
	}

	blk := f.connect(reorged.dispute)
	if err := f.w.BlockDisconnected(t.Context(), &blk.Header, testHeight+f.nonce); err != nil {
		t.Fatal(err)
	}
	f.add(u, reorged.loc, reorged.blob)
	f.handOverQueued()
	if n := f.resp.callCount(uuid(reorged.loc, u)); n != 0 {
		t.Errorf("dispute of a disconnected block: %d calls, want 0", n)
	}
}

func TestSeedBlock(t *testing.T) {
	f := newFixture(t)
	u := f.newUser()
	b := newBreach(1)
	f.add(u, b.loc, b.blob) // stored before the tower restarts

	w := New(Config{Store: f.store, Gatekeeper: f.w.gk, TowerKey: f.w.key, Responder: f.resp})
	w.SeedBlock(f.block(b.dispute))
	if n := f.resp.totalCalls(); n != 0 {
		t.Fatalf("SeedBlock handled %d breaches, want none", n)
	}
	f.w = w
	other := f.newUser()
	f.add(other, b.loc, b.blob)
	f.handOverQueued()
	if !f.hasTracker(uuid(b.loc, other)) {
		t.Error("an appointment for a seeded dispute was not handed over")
	}
	if f.hasTracker(uuid(b.loc, u)) {
		t.Error("seeding must not look up stored appointments")
	}
}

// Adds race with the block that mines their disputes: each breach is handled exactly once,
// by the block or from the queue, and none is missed.
func TestConcurrentAddAndBlock(t *testing.T) {
	f := newFixture(t)
	const n = 24
	users := make([]testUser, n)
	cases := make([]breachCase, n)
	txs := make([]*wire.MsgTx, n)
	for i := range n {
		users[i], cases[i] = f.newUser(), newBreach(uint32(1000+i))
		txs[i] = cases[i].dispute
	}
	blk := f.block(txs...)

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a := teos.Appointment{Locator: cases[i].loc, EncryptedBlob: cases[i].blob, ToSelfDelay: 42}
			if _, err := f.w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), users[i].sk)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if err := f.w.BlockConnected(t.Context(), blk, testHeight+1); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	f.tip = blk.BlockHash()
	f.handOverQueued() // the hand-overs queued by adds that saw the block cached

	for i := range n {
		id := uuid(cases[i].loc, users[i])
		if !f.hasTracker(id) {
			t.Errorf("breach %d missed", i)
		}
		if c := f.resp.callCount(id); c != 1 {
			t.Errorf("breach %d handed over %d times", i, c)
		}
	}
}

// TestLateInvalidKeepsItsSlot: an appointment added after its dispute was mined, found invalid
// when its queued hand-over is drained, is deleted without refund, as rust-teos v0.2 does for
// a triggered appointment that bounces (only a block's invalid ones are refunded).
func TestLateInvalidKeepsItsSlot(t *testing.T) {
	f := newFixture(t)
	garbage, rejected := f.newUser(), f.newUser()
	b := newBreach(1)
	f.connect(b.dispute)
	f.add(garbage, b.loc, bytes.Repeat([]byte{0xaa}, 200))
	f.add(rejected, b.loc, b.blob)
	f.resp.reject[uuid(b.loc, rejected)] = true
	f.handOverQueued()
	for name, u := range map[string]testUser{"undecryptable": garbage, "rejected": rejected} {
		if id := uuid(b.loc, u); f.stored(id) || f.hasTracker(id) {
			t.Errorf("%s: still stored", name)
		}
		if got := f.slots(u); got != testSlots-1 {
			t.Errorf("%s: slots = %d, want %d (no refund at add time)", name, got, testSlots-1)
		}
	}
	if q := f.queued(); len(q) != 0 {
		t.Errorf("queue %v, want empty", q)
	}
}

// damagedTrackerStore answers one UUID's tracker as a damaged record.
type damagedTrackerStore struct {
	*store.Store
	bad teos.UUID
}

func (s damagedTrackerStore) Tracker(id teos.UUID) (*store.Tracker, error) {
	if id == s.bad {
		return nil, fmt.Errorf("tracker %s: %w", id, store.ErrCorrupt)
	}
	return s.Store.Tracker(id)
}

// TestDamagedTrackerDoesNotFailBlocks: an appointment whose tracker record cannot be read is
// taken as tracked (not handed over again); the block, and the others it triggers, go on.
func TestDamagedTrackerDoesNotFailBlocks(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.newUser(), f.newUser()
	b := newBreach(1)
	f.add(alice, b.loc, b.blob)
	f.add(bob, b.loc, b.blob)
	f.w.store = damagedTrackerStore{Store: f.store, bad: uuid(b.loc, alice)}
	f.connect(b.dispute)
	if n := f.resp.callCount(uuid(b.loc, alice)); n != 0 {
		t.Errorf("the appointment with a damaged tracker was handed over %d times", n)
	}
	if _, ok := f.resp.breachOf(uuid(b.loc, bob)); !ok || !f.hasTracker(uuid(b.loc, bob)) {
		t.Error("the other appointment of the block was not handed over")
	}
}

// damagedRecordStore answers lookups as the store does when one matching appointment record
// cannot be read: the readable matches and an error wrapping store.ErrCorrupt.
type damagedRecordStore struct {
	*store.Store
	bad teos.UUID
}

func (s damagedRecordStore) AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*store.Appointment, error) {
	found, err := s.Store.AppointmentsByLocators(locs)
	if err != nil {
		return nil, err
	}
	for loc, appts := range found {
		appts = slices.DeleteFunc(appts, func(a *store.Appointment) bool { return a.UUID() == s.bad })
		if len(appts) == 0 {
			delete(found, loc)
		} else {
			found[loc] = appts
		}
	}
	return found, fmt.Errorf("appointments for %d locators: 1 unreadable, skipped: appointment %s: %w", len(locs), s.bad, store.ErrCorrupt)
}

// TestDamagedAppointmentDoesNotFailBlocks: a block matching an appointment whose record cannot
// be read still hands the other breaches over and completes; failing it would retry the block
// for ever and watch no later block.
func TestDamagedAppointmentDoesNotFailBlocks(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.newUser(), f.newUser()
	b, other := newBreach(1), newBreach(2)
	f.add(alice, b.loc, b.blob)
	f.add(bob, b.loc, b.blob)
	f.add(bob, other.loc, other.blob)
	f.w.store = damagedRecordStore{Store: f.store, bad: uuid(b.loc, alice)}
	f.connect(b.dispute, other.dispute) // fails the test if BlockConnected fails
	for _, id := range []teos.UUID{uuid(b.loc, bob), uuid(other.loc, bob)} {
		if _, ok := f.resp.breachOf(id); !ok || !f.hasTracker(id) {
			t.Errorf("readable appointment %s of the block was not handed over", id)
		}
	}
	if n := f.resp.callCount(uuid(b.loc, alice)); n != 0 {
		t.Errorf("the unreadable appointment was handed over %d times", n)
	}
}

// pageDamagedTrackerStore answers one UUID's tracker lookup as the store does when the read
// reaches a damaged page: ErrCorrupt and ErrDamaged, nothing known of the record.
type pageDamagedTrackerStore struct {
	*store.Store
	bad teos.UUID
}

func (s pageDamagedTrackerStore) Tracker(id teos.UUID) (*store.Tracker, error) {
	if id == s.bad {
		return nil, fmt.Errorf("load tracker: %w: %w: assertion failed: Page expected to be: 9, but self identifies as 0", store.ErrCorrupt, store.ErrDamaged)
	}
	return s.Store.Tracker(id)
}

// TestDamagedPageTrackerFailsBlock: a tracker lookup that reached a damaged page says nothing
// about whether the tracker exists; taking it as tracked would skip the breach for good. The
// block fails (and is retried), and once the read works the breach is handed over.
func TestDamagedPageTrackerFailsBlock(t *testing.T) {
	f := newFixture(t)
	alice := f.newUser()
	b := newBreach(1)
	f.add(alice, b.loc, b.blob)
	id := uuid(b.loc, alice)
	f.w.store = pageDamagedTrackerStore{Store: f.store, bad: id}
	blk := f.block(b.dispute)
	if err := f.w.BlockConnected(t.Context(), blk, testHeight+f.nonce); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("BlockConnected with a damaged page under the tracker lookup = %v, want ErrDamaged", err)
	}
	f.w.store = f.store
	if err := f.w.BlockConnected(t.Context(), blk, testHeight+f.nonce); err != nil {
		t.Fatalf("block run again: %v", err)
	}
	if _, ok := f.resp.breachOf(id); !ok || !f.hasTracker(id) {
		t.Error("the breach was not handed over when the block ran again")
	}
}
