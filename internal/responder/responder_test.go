package responder

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

const (
	startHeight = 200
	userSlots   = 100
	blobLen     = 100 // one slot
)

var errDown = errors.New("fake bitcoind unreachable")

// fakeCarrier is a small bitcoind: sent transactions enter its mempool unless a result is
// scripted for their txid, and transactions listed in down fail as if bitcoind were gone.
type fakeCarrier struct {
	mu      sync.Mutex
	results map[chainhash.Hash]carrier.Result
	mempool map[chainhash.Hash]bool
	down    map[chainhash.Hash]bool
	sent    []chainhash.Hash
	clears  int
}

func newFakeCarrier() *fakeCarrier {
	return &fakeCarrier{
		results: map[chainhash.Hash]carrier.Result{},
		mempool: map[chainhash.Hash]bool{},
		down:    map[chainhash.Hash]bool{},
	}
}

func (f *fakeCarrier) Send(_ context.Context, tx *wire.MsgTx) (carrier.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := tx.TxHash()
	if f.down[id] {
		return carrier.Result{}, errDown
	}
	f.sent = append(f.sent, id)
	res, ok := f.results[id]
	if !ok {
		res = carrier.Result{Status: carrier.StatusInMempool}
	}
	if res.Status == carrier.StatusInMempool {
		f.mempool[id] = true
	}
	return res, nil
}

func (f *fakeCarrier) InMempool(_ context.Context, txid chainhash.Hash) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[txid] {
		return false, errDown
	}
	return f.mempool[txid], nil
}

func (f *fakeCarrier) ClearCache() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clears++
}

func (f *fakeCarrier) script(tx *wire.MsgTx, res carrier.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[tx.TxHash()] = res
}

func (f *fakeCarrier) setDown(tx *wire.MsgTx, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[tx.TxHash()] = down
}

// takeSent returns and forgets the txids sent so far.
func (f *fakeCarrier) takeSent() []chainhash.Hash {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

var (
	rejected = carrier.Result{Status: carrier.StatusRejected, Code: -26}
	inChain  = carrier.Result{Status: carrier.StatusIrrevocablyResolved}
)

type env struct {
	store   *store.Store
	carrier *fakeCarrier
	r       *Responder
	user    teos.UserID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var user teos.UserID
	user[0] = 0x02
	user[1] = 0x77
	_, err = s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: userSlots, SubscriptionStart: 1, SubscriptionExpiry: 100_000}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: s, carrier: newFakeCarrier(), user: user}
	e.r = New(Config{Store: s, Carrier: e.carrier}, startHeight)
	return e
}

// breach is an appointment with its dispute and penalty.
type breach struct {
	id               teos.UUID
	dispute, penalty *wire.MsgTx
}

// newBreach stores an appointment (paying one slot) and builds its transactions.
func (e *env) newBreach(t *testing.T, seed byte) breach {
	t.Helper()
	dispute := wire.NewMsgTx(2)
	dispute.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{seed, 0xd1}, 0), nil, nil))
	dispute.AddTxOut(wire.NewTxOut(50_000, []byte{0x51}))
	disputeID := dispute.TxHash()
	penalty := wire.NewMsgTx(2)
	penalty.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&disputeID, 0), nil, [][]byte{{seed}}))
	penalty.AddTxOut(wire.NewTxOut(49_000, []byte{0x51}))

	a := &store.Appointment{
		Appointment: teos.Appointment{Locator: teos.NewLocator(disputeID), EncryptedBlob: make([]byte, blobLen), ToSelfDelay: 20},
		UserID:      e.user,
		StartBlock:  startHeight,
	}
	_, err := e.store.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
		u.AvailableSlots -= teos.Slots(blobLen)
		return u, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return breach{id: a.UUID(), dispute: dispute, penalty: penalty}
}

// handle hands b over and stores its tracker, as the watcher does.
func (e *env) handle(t *testing.T, b breach) bool {
	t.Helper()
	tr, err := e.r.HandleBreach(t.Context(), b.id, b.dispute, b.penalty)
	if err != nil {
		t.Fatalf("HandleBreach: %v", err)
	}
	if tr == nil {
		return false
	}
	if err := e.store.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tr}}); err != nil {
		t.Fatal(err)
	}
	return true
}

func (e *env) slots(t *testing.T) uint32 {
	t.Helper()
	u, ok, err := e.store.User(e.user)
	if err != nil || !ok {
		t.Fatalf("User: %v, %v", ok, err)
	}
	return u.AvailableSlots
}

// tracker returns b's tracker, or nil if it has none.
func (e *env) tracker(t *testing.T, b breach) *store.Tracker {
	t.Helper()
	tr, err := e.store.Tracker(b.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (e *env) wantStatus(t *testing.T, b breach, height uint32, confirmed bool) {
	t.Helper()
	tr := e.tracker(t, b)
	if tr == nil {
		t.Fatalf("no tracker, want (height %d, confirmed %v)", height, confirmed)
	}
	if tr.Height != height || tr.Confirmed != confirmed {
		t.Fatalf("tracker = (height %d, confirmed %v), want (%d, %v)", tr.Height, tr.Confirmed, height, confirmed)
	}
}

func (e *env) wantGone(t *testing.T, b breach) {
	t.Helper()
	if tr := e.tracker(t, b); tr != nil {
		t.Fatalf("tracker still stored: (height %d, confirmed %v)", tr.Height, tr.Confirmed)
	}
	if _, err := e.store.Appointment(b.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("appointment: err = %v, want ErrNotFound", err)
	}
}

// block builds a block at height; variant tells apart competing blocks at one height.
func block(height uint32, variant byte, txs ...*wire.MsgTx) *wire.MsgBlock {
	coinbase := wire.NewMsgTx(1)
	coinbase.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{}, wire.MaxPrevOutIndex),
		[]byte{byte(height), byte(height >> 8), byte(height >> 16), variant}, nil))
	coinbase.AddTxOut(wire.NewTxOut(50, []byte{0x51}))
	b := &wire.MsgBlock{Header: wire.BlockHeader{Version: 4, Nonce: uint32(variant)<<24 | height}}
	b.Transactions = append([]*wire.MsgTx{coinbase}, txs...)
	return b
}

func (e *env) connect(t *testing.T, height uint32, txs ...*wire.MsgTx) {
	t.Helper()
	if err := e.r.BlockConnected(t.Context(), block(height, 0, txs...), height); err != nil {
		t.Fatalf("BlockConnected(%d): %v", height, err)
	}
}

// connectRange connects empty blocks from..to inclusive.
func (e *env) connectRange(t *testing.T, from, to uint32) {
	t.Helper()
	for h := from; h <= to; h++ {
		e.connect(t, h)
	}
}

func (e *env) wantSent(t *testing.T, want ...*wire.MsgTx) {
	t.Helper()
	got := e.carrier.takeSent()
	ids := make([]chainhash.Hash, len(want))
	for i, tx := range want {
		ids[i] = tx.TxHash()
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("sent %v, want %v", got, ids)
	}
}

func TestHandleBreachBroadcasts(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	if !e.handle(t, b) {
		t.Fatal("breach not tracked")
	}
	e.wantSent(t, b.penalty)
	e.wantStatus(t, b, startHeight, false)
	tr := e.tracker(t, b)
	if tr.PenaltyTxID != b.penalty.TxHash() || tr.DisputeTxID != b.dispute.TxHash() {
		t.Fatal("tracker txids do not match the transactions")
	}
	if got, err := deserialize(tr.PenaltyTx); err != nil || got.TxHash() != b.penalty.TxHash() {
		t.Fatalf("stored penalty does not decode to the penalty: %v", err)
	}
}

func TestHandleBreachPenaltyInMempool(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.mempool[b.penalty.TxHash()] = true
	if !e.handle(t, b) {
		t.Fatal("breach not tracked")
	}
	e.wantSent(t)
	e.wantStatus(t, b, startHeight, false)
}

func TestHandleBreachPenaltyInRecentBlock(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	for h := uint32(startHeight - 99); h <= startHeight; h++ {
		var txs []*wire.MsgTx
		if h == 150 {
			txs = append(txs, b.penalty)
		}
		e.r.SeedBlock(block(h, 0, txs...), h)
	}
	if !e.handle(t, b) {
		t.Fatal("breach not tracked")
	}
	e.wantSent(t)
	e.wantStatus(t, b, 150, true)
}

func TestTxIndexKeepsOneHundredBlocks(t *testing.T) {
	e := newEnv(t)
	old, kept := e.newBreach(t, 1), e.newBreach(t, 2)
	e.r.SeedBlock(block(startHeight-99, 0, old.penalty), startHeight-99)
	e.r.SeedBlock(block(startHeight-98, 0, kept.penalty), startHeight-98)
	for h := uint32(startHeight - 97); h <= startHeight; h++ {
		e.r.SeedBlock(block(h, 0), h)
	}
	e.connect(t, startHeight+1) // evicts startHeight-99
	if n := e.r.index.len(); n != teos.IrrevocablyResolved {
		t.Fatalf("index holds %d blocks, want %d", n, teos.IrrevocablyResolved)
	}
	e.handle(t, old)
	e.wantSent(t, old.penalty) // no longer known to be mined: broadcast
	e.handle(t, kept)
	e.wantSent(t)
	e.wantStatus(t, kept, startHeight-98, true)
}

func TestHandleBreachRejected(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.script(b.penalty, rejected)
	if e.handle(t, b) {
		t.Fatal("rejected penalty reported as tracked")
	}
	if tr := e.tracker(t, b); tr != nil {
		t.Fatal("a rejected penalty got a tracker")
	}
}

// "Already in chain" (-27) for a penalty in no indexed block: bitcoind is ahead of the tower.
// The tracker is unconfirmed since now; the block holding the penalty confirms it, and it then
// completes 100 blocks later with its slot refunded.
func TestHandleBreachAlreadyInChain(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.script(b.penalty, inChain)
	if !e.handle(t, b) {
		t.Fatal("penalty already in chain not tracked")
	}
	e.wantStatus(t, b, startHeight, false)
	e.carrier.takeSent()
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.dispute, b.penalty)
	e.wantSent(t)
	e.wantStatus(t, b, mined, true)
	before := e.slots(t)
	e.connectRange(t, mined+1, mined+teos.IrrevocablyResolved-1)
	e.wantStatus(t, b, mined, true)
	e.connect(t, mined+teos.IrrevocablyResolved)
	e.wantGone(t, b)
	if got := e.slots(t); got != before+1 {
		t.Fatalf("slots = %d after completion, want %d", got, before+1)
	}
}

// Regression (CI, TestChaos): teosd restarts behind bitcoind, which already holds the dispute at
// H and the penalty a few blocks later. Catching up, the blocks between must not be taken for a
// reorg of the penalty's block: nothing is re-sent, nothing dropped, and the penalty's block
// confirms it.
func TestAlreadyInChainPenaltySeveralBlocksAhead(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.script(b.penalty, inChain)
	e.carrier.script(b.dispute, carrier.Result{Status: carrier.StatusRejected, Code: -25})
	if !e.handle(t, b) {
		t.Fatal("not tracked")
	}
	e.carrier.takeSent()
	dispute := uint32(startHeight + 1)
	e.connect(t, dispute, b.dispute)
	e.connect(t, dispute+1)
	e.connect(t, dispute+2, b.penalty)
	e.wantSent(t)
	e.wantStatus(t, b, dispute+2, true)
}

// The watcher runs before the responder on a block: a penalty mined in the same block as the
// dispute answers -27 and is then dated at that block.
func TestAlreadyInChainPenaltyMinedInThisBlock(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.script(b.penalty, inChain)
	e.handle(t, b)
	e.carrier.takeSent()
	e.connect(t, startHeight+1, b.dispute, b.penalty)
	e.wantStatus(t, b, startHeight+1, true)
	e.wantSent(t) // found where it was expected: nothing re-sent
}

func TestHandleBreachTransportError(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.carrier.setDown(b.penalty, true)
	if _, err := e.r.HandleBreach(t.Context(), b.id, b.dispute, b.penalty); !errors.Is(err, errDown) {
		t.Fatalf("err = %v, want the carrier's error", err)
	}
	if tr := e.tracker(t, b); tr != nil {
		t.Fatal("tracker stored although nothing was decided")
	}
	e.carrier.setDown(b.penalty, false)
	if !e.handle(t, b) {
		t.Fatal("retry not tracked")
	}
}

// HandleBreach stores nothing; a tracker whose appointment was deleted before the commit is
// not stored.
func TestHandleBreachWritesNothing(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	tr, err := e.r.HandleBreach(t.Context(), b.id, b.dispute, b.penalty)
	if err != nil || tr == nil {
		t.Fatalf("HandleBreach = %v, %v", tr, err)
	}
	if e.tracker(t, b) != nil {
		t.Fatal("HandleBreach stored a tracker")
	}
	if err := e.store.DeleteAppointments([]teos.UUID{b.id}, false); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tr}}); err != nil {
		t.Fatal(err)
	}
	e.wantGone(t, b)
}

func TestConfirmationThenCompletion(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	slots := e.slots(t)
	if slots != userSlots-1 {
		t.Fatalf("slots = %d after one appointment, want %d", slots, userSlots-1)
	}
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.wantStatus(t, b, mined, true)

	e.connectRange(t, mined+1, mined+teos.IrrevocablyResolved-1)
	e.wantStatus(t, b, mined, true)
	if got := e.slots(t); got != slots {
		t.Fatalf("slots = %d before completion, want %d", got, slots)
	}

	e.connect(t, mined+teos.IrrevocablyResolved)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d after completion, want %d (refund of one)", got, slots+1)
	}
	e.wantSent(t, b.penalty) // the first broadcast only: a confirmed penalty is never re-sent
	if e.r.Height() != mined+teos.IrrevocablyResolved {
		t.Fatalf("Height = %d", e.r.Height())
	}
	if e.carrier.clears != teos.IrrevocablyResolved+2 {
		t.Fatalf("cache cleared %d times, want once per block and once per hand-over (%d)", e.carrier.clears, teos.IrrevocablyResolved+2)
	}
}

func TestRebroadcastAfterSixBlocks(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.carrier.takeSent()
	e.connectRange(t, startHeight+1, startHeight+teos.ConfirmationsBeforeRetry-1)
	e.wantSent(t)
	e.wantStatus(t, b, startHeight, false)

	e.connect(t, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantSent(t, b.dispute, b.penalty) // the dispute is in no indexed block
	e.wantStatus(t, b, startHeight+teos.ConfirmationsBeforeRetry, false)

	// And again six blocks later.
	e.connectRange(t, startHeight+7, startHeight+11)
	e.wantSent(t)
	e.connect(t, startHeight+12)
	e.wantSent(t, b.dispute, b.penalty) // the dispute is in no indexed block
}

// -25 with the dispute in an indexed block: the penalty is invalid.
func TestRebroadcastRejectedDeletesWithRefund(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	slots := e.slots(t)
	e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusRejected, Code: -25})
	e.connect(t, startHeight+1, b.dispute)
	e.carrier.takeSent()
	e.connectRange(t, startHeight+2, startHeight+teos.ConfirmationsBeforeRetry)
	e.wantSent(t, b.penalty) // an indexed dispute is not re-sent
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded, as rust-teos v0.2 does)", got, slots+1)
	}
}

// A stale penalty answered -27 while in no indexed block: bitcoind is ahead of the tower. It
// waits unconfirmed (re-dated, so it is not re-sent every block) and is confirmed by its own
// block, so its 100 blocks count from there.
func TestRebroadcastAlreadyInChainWaitsForItsBlock(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	e.carrier.script(b.penalty, inChain)
	h := uint32(startHeight + teos.ConfirmationsBeforeRetry)
	e.connectRange(t, startHeight+1, h)
	e.wantStatus(t, b, h, false)
	e.connect(t, h+1, b.penalty)
	e.wantStatus(t, b, h+1, true)
}

// A stale penalty answered -27 that is in an indexed block is confirmed at that block.
func TestRebroadcastAlreadyInIndexedBlockConfirms(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	// The penalty's block is indexed, but the tracker did not see it (the block came in
	// before the tracker existed in this test's order of events).
	e.r.SeedBlock(block(mined, 0, b.penalty), mined)
	e.carrier.script(b.penalty, inChain)
	h := uint32(startHeight + teos.ConfirmationsBeforeRetry)
	for height := mined + 1; height <= h; height++ {
		e.connect(t, height)
	}
	e.wantStatus(t, b, mined, true)
}

func TestReorgResendsDisputeAndPenalty(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.connect(t, mined+1)
	e.carrier.takeSent()

	for _, h := range []uint32{mined + 1, mined} {
		hdr := block(h, 0).Header
		if err := e.r.BlockDisconnected(t.Context(), &hdr, h); err != nil {
			t.Fatal(err)
		}
	}
	if e.r.Height() != mined-1 {
		t.Fatalf("Height = %d after disconnecting %d, want %d", e.r.Height(), mined, mined-1)
	}
	e.wantStatus(t, b, mined, true) // nothing happens before the next connection
	e.wantSent(t)

	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, mined, false)

	// Drained: the next block sends nothing.
	if err := e.r.BlockConnected(t.Context(), block(mined+1, 1), mined+1); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t)
	e.wantStatus(t, b, mined, false)
}

func TestReorgPenaltyMinedAgainInNewBlock(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.carrier.takeSent()
	hdr := block(mined, 0).Header
	if err := e.r.BlockDisconnected(t.Context(), &hdr, mined); err != nil {
		t.Fatal(err)
	}
	if err := e.r.BlockConnected(t.Context(), block(mined, 1, b.penalty), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t)
	e.wantStatus(t, b, mined, true)
}

func TestReorgDisputeAndPenaltyRejectedDeletes(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	slots := e.slots(t)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.carrier.takeSent()
	hdr := block(mined, 0).Header
	if err := e.r.BlockDisconnected(t.Context(), &hdr, mined); err != nil {
		t.Fatal(err)
	}
	e.carrier.script(b.dispute, rejected)
	e.carrier.script(b.penalty, rejected) // -25 would keep the appointment (TestReorgDisputeGoneUntracks)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantGone(t, b)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d (refunded, as rust-teos v0.2 does)", got, slots+1)
	}
}

func TestReorgPenaltyRejectedDeletes(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	hdr := block(mined, 0).Header
	if err := e.r.BlockDisconnected(t.Context(), &hdr, mined); err != nil {
		t.Fatal(err)
	}
	e.carrier.script(b.dispute, inChain) // still mined elsewhere: go on to the penalty
	e.carrier.script(b.penalty, rejected)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantGone(t, b)
}

// A tracker confirmed in a block that left the chain while the tower was down is found
// from the store alone.
func TestReorgSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.carrier.takeSent()

	restarted := New(Config{Store: e.store, Carrier: e.carrier}, mined-1)
	if err := restarted.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, mined, false)
}

func TestTransportErrorMidBlockThenRetry(t *testing.T) {
	e := newEnv(t)
	done, first, second := e.newBreach(t, 1), e.newBreach(t, 2), e.newBreach(t, 3)
	if bytes.Compare(first.id[:], second.id[:]) > 0 { // trackers are visited in UUID order
		first, second = second, first
	}
	e.handle(t, done)
	e.connect(t, startHeight+1, done.penalty)
	// The block at last completes done and finds first and second stale.
	last := uint32(startHeight + 1 + teos.IrrevocablyResolved)
	e.connectRange(t, startHeight+2, last-teos.ConfirmationsBeforeRetry)
	e.handle(t, first)
	e.handle(t, second)
	e.connectRange(t, last-teos.ConfirmationsBeforeRetry+1, last-1)
	e.carrier.takeSent()
	slots := e.slots(t)

	e.carrier.setDown(second.penalty, true)
	err := e.r.BlockConnected(t.Context(), block(last, 0), last)
	if !errors.Is(err, errDown) {
		t.Fatalf("BlockConnected err = %v, want the carrier's error", err)
	}
	e.wantGone(t, done)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d, want %d", got, slots+1)
	}
	e.wantSent(t, first.dispute, first.penalty, second.dispute)
	e.wantStatus(t, first, last, false)
	e.wantStatus(t, second, last-teos.ConfirmationsBeforeRetry, false)

	e.carrier.setDown(second.penalty, false)
	if err := e.r.BlockConnected(t.Context(), block(last, 0), last); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e.wantSent(t, second.dispute, second.penalty) // first is not re-sent
	e.wantStatus(t, first, last, false)
	e.wantStatus(t, second, last, false)
	if got := e.slots(t); got != slots+1 {
		t.Fatalf("slots = %d after retry, want %d (no double refund)", got, slots+1)
	}
}

func TestTransportErrorDuringReorgIsRetried(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.carrier.takeSent()
	hdr := block(mined, 0).Header
	if err := e.r.BlockDisconnected(t.Context(), &hdr, mined); err != nil {
		t.Fatal(err)
	}
	e.carrier.setDown(b.penalty, true)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); !errors.Is(err, errDown) {
		t.Fatalf("err = %v, want the carrier's error", err)
	}
	e.wantSent(t, b.dispute)
	e.wantStatus(t, b, mined, true) // still awaiting its re-send

	e.carrier.setDown(b.penalty, false)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, mined, false)
}

func TestRetryOfConfirmingBlockIsHarmless(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	e.connect(t, mined, b.penalty)
	e.wantStatus(t, b, mined, true)
}

func TestUserDeletedMeanwhile(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	// What the gatekeeper does to an outdated user, before the responder sees the block.
	if err := e.store.DeleteAppointments([]teos.UUID{b.id}, false); err != nil {
		t.Fatal(err)
	}
	e.connect(t, startHeight+1, b.penalty)
	e.wantGone(t, b)
}

// Regression (issue 11): the penalty answers -27 because bitcoind already has block H+1 with
// it, which the tower has not processed; H+1 is then reorganised out. Whether the tower saw
// H+1 before the reorg or never did, the penalty is sent again: at once if the tower saw it
// confirmed, as a stale penalty 6 blocks on if it never did.
func TestAlreadyInChainThenReorgedOutIsResent(t *testing.T) {
	for _, seen := range []bool{true, false} {
		name := map[bool]string{true: "H+1 seen", false: "H+1 never seen"}[seen]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			b := e.newBreach(t, 1)
			e.carrier.script(b.penalty, inChain) // bitcoind is at H+1, which holds the penalty
			if !e.handle(t, b) {
				t.Fatal("not tracked")
			}
			next := uint32(startHeight + 1)
			if seen {
				e.connect(t, next, b.penalty)
				e.wantStatus(t, b, next, true)
				hdr := block(next, 0).Header
				if err := e.r.BlockDisconnected(t.Context(), &hdr, next); err != nil {
					t.Fatal(err)
				}
			}
			e.carrier.takeSent()
			// After the reorg the penalty is back in bitcoind's mempool, not in the chain.
			e.carrier.script(b.penalty, carrier.Result{Status: carrier.StatusInMempool})
			if err := e.r.BlockConnected(t.Context(), block(next, 1), next); err != nil {
				t.Fatal(err)
			}
			if seen {
				e.wantSent(t, b.dispute, b.penalty)
				e.wantStatus(t, b, next, false)
				return
			}
			e.wantSent(t)
			e.connectRange(t, next+1, startHeight+teos.ConfirmationsBeforeRetry)
			e.wantSent(t, b.dispute, b.penalty)
			e.wantStatus(t, b, startHeight+teos.ConfirmationsBeforeRetry, false)
		})
	}
}

// A block taken for reorganised out whose dispute is still in the chain: bitcoind rejects the
// dispute (-25, its outputs are spent) but calls the penalty already in the chain, in a block the
// tower has not reached. The tracker stays, waiting unconfirmed for that block; nothing is
// dropped.
func TestReorgDisputeRejectedPenaltyInChainKeepsTracker(t *testing.T) {
	e := newEnv(t)
	b := e.newBreach(t, 1)
	e.handle(t, b)
	mined := uint32(startHeight + 1)
	e.connect(t, mined, b.penalty)
	hdr := block(mined, 0).Header
	if err := e.r.BlockDisconnected(t.Context(), &hdr, mined); err != nil {
		t.Fatal(err)
	}
	e.carrier.takeSent()
	e.carrier.script(b.dispute, carrier.Result{Status: carrier.StatusRejected, Code: -25})
	e.carrier.script(b.penalty, inChain)
	if err := e.r.BlockConnected(t.Context(), block(mined, 1), mined); err != nil {
		t.Fatal(err)
	}
	e.wantSent(t, b.dispute, b.penalty)
	e.wantStatus(t, b, mined, false)
}

// countingStore counts the responder's commits.
type countingStore struct {
	*store.Store
	applies int
}

func (c *countingStore) ApplyChanges(ch *store.Changes) error {
	c.applies++
	return c.Store.ApplyChanges(ch)
}

// A block that confirms, completes, re-sends and drops trackers commits them all at once.
func TestBlockChangesCommittedOnce(t *testing.T) {
	e := newEnv(t)
	var confirm, complete, stale, drop []breach
	for i := range 4 {
		confirm = append(confirm, e.newBreach(t, byte(10+i)))
		complete = append(complete, e.newBreach(t, byte(20+i)))
	}
	for _, b := range complete {
		e.handle(t, b)
	}
	e.connect(t, startHeight+1, penalties(complete)...)
	last := uint32(startHeight + 1 + teos.IrrevocablyResolved)
	e.connectRange(t, startHeight+2, last-teos.ConfirmationsBeforeRetry)
	for i := range 4 {
		stale = append(stale, e.newBreach(t, byte(30+i)))
		drop = append(drop, e.newBreach(t, byte(40+i)))
	}
	for _, b := range slices.Concat(confirm, stale, drop) {
		e.handle(t, b)
	}
	e.connectRange(t, last-teos.ConfirmationsBeforeRetry+1, last-1)
	for _, b := range drop {
		e.carrier.script(b.penalty, rejected)
	}
	cs := &countingStore{Store: e.store}
	e.r.store = cs
	slots := e.slots(t)
	e.connect(t, last, penalties(confirm)...)
	if cs.applies != 1 {
		t.Fatalf("%d commits for one block, want 1", cs.applies)
	}
	for _, b := range confirm {
		e.wantStatus(t, b, last, true)
	}
	for _, b := range stale {
		e.wantStatus(t, b, last, false)
	}
	for _, b := range slices.Concat(complete, drop) {
		e.wantGone(t, b)
	}
	if got, want := e.slots(t), slots+uint32(len(complete)+len(drop)); got != want {
		t.Fatalf("slots = %d, want %d (completed and rejected ones refunded)", got, want)
	}
}

func penalties(bs []breach) []*wire.MsgTx {
	var txs []*wire.MsgTx
	for _, b := range bs {
		txs = append(txs, b.penalty)
	}
	return txs
}
