package watcher

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

const (
	testSlots  = 100
	testHeight = 200
)

var errUnreachable = errors.New("bitcoind unreachable")

type breach struct {
	dispute, penalty *wire.MsgTx
}

// fakeResponder returns a tracker for every accepted breach, like the real responder, and
// can be told to reject a UUID or to fail transiently.
type fakeResponder struct {
	mu       sync.Mutex
	calls    map[teos.UUID]int    // every HandleBreach call
	tracked  map[teos.UUID]breach // breaches that got a tracker
	created  map[teos.UUID]int    // trackers returned per UUID (must never exceed 1)
	reject   map[teos.UUID]bool
	failNext map[teos.UUID]int // transient errors still to return for a UUID
}

func newFakeResponder() *fakeResponder {
	return &fakeResponder{
		calls:    make(map[teos.UUID]int),
		tracked:  make(map[teos.UUID]breach),
		created:  make(map[teos.UUID]int),
		reject:   make(map[teos.UUID]bool),
		failNext: make(map[teos.UUID]int),
	}
}

// BlockInChain says every block is in the chain: a rejected hand-over's rejection stands.
func (*fakeResponder) BlockInChain(context.Context, chainhash.Hash) (bool, error) { return true, nil }

func (r *fakeResponder) HandleBreach(_ context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id]++
	if r.failNext[id] > 0 {
		r.failNext[id]--
		return nil, errUnreachable
	}
	if r.reject[id] {
		return nil, nil
	}
	r.tracked[id] = breach{dispute, penalty}
	r.created[id]++
	return &store.Tracker{
		UUID:        id,
		DisputeTx:   serialize(dispute),
		PenaltyTx:   serialize(penalty),
		DisputeTxID: dispute.TxHash(),
		PenaltyTxID: penalty.TxHash(),
		Height:      testHeight,
	}, nil
}

func (r *fakeResponder) callCount(id teos.UUID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *fakeResponder) breachOf(id teos.UUID) (breach, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.tracked[id]
	return b, ok
}

func (r *fakeResponder) totalCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

type fixture struct {
	t     *testing.T
	store *store.Store
	w     *Watcher
	resp  *fakeResponder
	tip   chainhash.Hash
	nonce uint32
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	resp := newFakeResponder()
	f, _ := newFixtureWith(t, func(*store.Store) Responder { return resp })
	f.resp = resp
	return f
}

// newFixtureWith is newFixture with the responder newResponder makes on the fixture's store
// (f.resp stays nil); it also returns the gatekeeper, for tests that drive blocks themselves.
func newFixtureWith(t *testing.T, newResponder func(*store.Store) Responder) (*fixture, *gatekeeper.Gatekeeper) {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	gk := gatekeeper.New(gatekeeper.Config{Store: s, SubscriptionSlots: testSlots, SubscriptionDuration: 1000, ExpiryDelta: 6}, testHeight)
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	w := New(Config{Store: s, Gatekeeper: gk, TowerKey: key, Responder: newResponder(s)})
	return &fixture{t: t, store: s, w: w}, gk
}

type testUser struct {
	sk *btcec.PrivateKey
	id teos.UserID
}

func (f *fixture) newUser() testUser {
	f.t.Helper()
	sk, err := btcec.NewPrivateKey()
	if err != nil {
		f.t.Fatal(err)
	}
	id := teos.UserIDFromPubKey(sk.PubKey())
	if _, err := f.w.Register(id[:]); err != nil {
		f.t.Fatal(err)
	}
	return testUser{sk: sk, id: id}
}

func (f *fixture) add(u testUser, loc teos.Locator, blob []byte) *Accepted {
	f.t.Helper()
	a := teos.Appointment{Locator: loc, EncryptedBlob: blob, ToSelfDelay: 42}
	acc, err := f.w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), u.sk))
	if err != nil {
		f.t.Fatalf("AddAppointment: %v", err)
	}
	return acc
}

// block builds the next block on the fixture's tip; connect delivers it.
func (f *fixture) block(txs ...*wire.MsgTx) *wire.MsgBlock {
	f.nonce++
	b := wire.NewMsgBlock(wire.NewBlockHeader(1, &f.tip, &chainhash.Hash{}, 0, f.nonce))
	b.Transactions = append(b.Transactions, newTx(0xc0ffee00+f.nonce)) // a coinbase stand-in
	b.Transactions = append(b.Transactions, txs...)
	return b
}

func (f *fixture) connect(txs ...*wire.MsgTx) *wire.MsgBlock {
	f.t.Helper()
	b := f.block(txs...)
	if err := f.w.BlockConnected(f.t.Context(), b, testHeight+f.nonce); err != nil {
		f.t.Fatalf("BlockConnected: %v", err)
	}
	f.tip = b.BlockHash()
	return b
}

// handOverQueued runs the queued hand-overs, as the chain goroutine does after a poll.
func (f *fixture) handOverQueued() {
	f.t.Helper()
	if err := f.w.HandOverQueued(f.t.Context()); err != nil {
		f.t.Fatalf("HandOverQueued: %v", err)
	}
}

// queued returns the UUIDs of the queued hand-overs.
func (f *fixture) queued() []teos.UUID {
	f.t.Helper()
	list, err := f.store.QueuedHandOvers()
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []teos.UUID
	for _, q := range list {
		ids = append(ids, q.UUID)
	}
	return ids
}

// woken reports (and consumes) a pending wake-up of the chain monitor.
func (f *fixture) woken() bool {
	select {
	case <-f.w.HandOversQueued():
		return true
	default:
		return false
	}
}

func (f *fixture) slots(u testUser) uint32 {
	f.t.Helper()
	info, ok, err := f.store.User(u.id)
	if err != nil || !ok {
		f.t.Fatalf("User: %v, %v", ok, err)
	}
	return info.AvailableSlots
}

func (f *fixture) stored(id teos.UUID) bool {
	f.t.Helper()
	_, err := f.store.Appointment(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func (f *fixture) hasTracker(id teos.UUID) bool {
	f.t.Helper()
	_, err := f.store.Tracker(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

// newTx returns a distinct one-input, one-output transaction for each seed.
func newTx(seed uint32) *wire.MsgTx {
	var prev chainhash.Hash
	binary.LittleEndian.PutUint32(prev[:], seed)
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&prev, seed%4), nil, nil))
	tx.AddTxOut(wire.NewTxOut(int64(seed)+1000, []byte{0x51}))
	return tx
}

// spend returns a penalty-like transaction spending dispute's first output.
func spend(dispute *wire.MsgTx, value int64) *wire.MsgTx {
	txid := dispute.TxHash()
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&txid, 0), nil, [][]byte{{0x01, 0x02}}))
	tx.AddTxOut(wire.NewTxOut(value, []byte{0x00, 0x14}))
	return tx
}

func serialize(tx *wire.MsgTx) []byte {
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		panic(err) // a bytes.Buffer never fails
	}
	return buf.Bytes()
}

// breachCase is a dispute, one penalty for it and the appointment blob hiding that penalty.
type breachCase struct {
	dispute, penalty *wire.MsgTx
	loc              teos.Locator
	blob             []byte
}

func newBreach(seed uint32) breachCase {
	d := newTx(seed)
	p := spend(d, int64(seed))
	return breachCase{dispute: d, penalty: p, loc: teos.NewLocator(d.TxHash()), blob: wtcrypto.Encrypt(serialize(p), d.TxHash())}
}

func uuid(loc teos.Locator, u testUser) teos.UUID { return teos.NewUUID(loc, u.id) }
