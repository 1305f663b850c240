package responder

import (
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// btcdEnv is a responder following a real btcd through the production carrier, with a real
// bbolt store holding one user. The test hands it blocks, as the chain monitor would.
type btcdEnv struct {
	node   *btcdtest.Node
	client *bitcoind.Client
	store  *store.Store
	user   teos.UserID
	r      *Responder
}

func newBTCDEnv(t *testing.T) *btcdEnv {
	t.Helper()
	node := btcdtest.Start(t)
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &btcdEnv{node: node, client: node.Client(t), store: s, user: teos.UserID{0x02, 0x42}}
	if _, err := s.UpdateUser(e.user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionStart: 1, SubscriptionExpiry: 100_000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// start makes a responder whose last processed block is height, its index seeded with the
// blocks up to it, as teosd does at start-up.
func (e *btcdEnv) start(t *testing.T, height uint32) {
	t.Helper()
	e.r = New(Config{Store: e.store, Carrier: carrier.New(e.client, nil)}, height)
	for h := height - min(height, teos.IrrevocablyResolved-1); h <= height; h++ {
		e.r.SeedBlock(e.blockAt(t, h), h)
	}
}

func (e *btcdEnv) tip(t *testing.T) uint32 {
	t.Helper()
	best, err := e.client.BestBlockHash(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	h, err := e.client.BlockHeight(t.Context(), best)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *btcdEnv) blockAt(t *testing.T, height uint32) *wire.MsgBlock {
	t.Helper()
	hash, err := e.client.BlockHash(t.Context(), height)
	if err != nil {
		t.Fatal(err)
	}
	block, err := e.client.Block(t.Context(), hash)
	if err != nil {
		t.Fatal(err)
	}
	return block
}

func (e *btcdEnv) appoint(t *testing.T, b *btcdtest.Breach) teos.UUID {
	t.Helper()
	a := &store.Appointment{
		Appointment: teos.Appointment{Locator: teos.NewLocator(b.Commitment.TxHash()), EncryptedBlob: make([]byte, 300)},
		UserID:      e.user,
	}
	if _, err := e.store.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
		u.AvailableSlots--
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	return a.UUID()
}

// handle hands b's breach to the responder and stores its tracker, as the watcher does; it
// fails the test if the penalty was rejected.
func (e *btcdEnv) handle(t *testing.T, id teos.UUID, b *btcdtest.Breach) {
	t.Helper()
	tr, err := e.r.HandleBreach(t.Context(), id, b.Commitment, b.Penalty)
	if err != nil {
		t.Fatal(err)
	}
	if tr == nil {
		t.Fatal("penalty rejected")
	}
	if err := e.store.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tr}}); err != nil {
		t.Fatal(err)
	}
}

// connect hands btcd's block at height to the responder.
func (e *btcdEnv) connect(t *testing.T, height uint32) *wire.MsgBlock {
	t.Helper()
	block := e.blockAt(t, height)
	if err := e.r.BlockConnected(t.Context(), block, height); err != nil {
		t.Fatalf("BlockConnected(%d): %v", height, err)
	}
	return block
}

// mine mines one block holding txs (sent first) and returns its height.
func (e *btcdEnv) mine(t *testing.T, txs ...*wire.MsgTx) uint32 {
	t.Helper()
	for _, tx := range txs {
		if _, err := e.client.SendRawTransaction(t.Context(), tx); err != nil {
			t.Fatal(err)
		}
	}
	hash := e.node.Generate(t, 1)[0]
	block, err := e.client.Block(t.Context(), *hash)
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range txs {
		if !contains(block, tx.TxHash()) {
			t.Fatalf("tx %s not mined", tx.TxHash())
		}
	}
	return e.tip(t)
}

// wantTracker checks that id is tracked at height, confirmed or not, and kept its appointment.
func (e *btcdEnv) wantTracker(t *testing.T, id teos.UUID, height uint32, confirmed bool) {
	t.Helper()
	tr, err := e.store.Tracker(id)
	if err != nil {
		t.Fatalf("tracker: %v (the penalty is in the chain: the user lost the tower's watch)", err)
	}
	if tr.Height != height || tr.Confirmed != confirmed {
		t.Fatalf("tracker = (height %d, confirmed %v), want (%d, %v)", tr.Height, tr.Confirmed, height, confirmed)
	}
	if _, err := e.store.Appointment(id); err != nil {
		t.Fatalf("appointment: %v", err)
	}
}

// After a crash, teosd processes again the blocks since its persisted tip (persisted about
// once a second in a catch-up, after the trackers). A tracker confirmed in one of them, above
// the block being processed, is still confirmed: its penalty and the penalty's child are in the
// chain, and re-sending it (-25: every output spent) must not drop the tracker.
func TestRestartBelowConfirmedPenaltyKeepsTracker(t *testing.T) {
	e := newBTCDEnv(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	persisted := e.tip(t)
	e.start(t, persisted)

	d := e.mine(t, b.Commitment)
	e.handle(t, id, b)
	e.connect(t, d)
	p := e.mine(t) // the penalty, from the mempool
	if !contains(e.connect(t, p), b.Penalty.TxHash()) {
		t.Fatal("penalty not mined")
	}
	e.wantTracker(t, id, p, true)
	e.connect(t, e.mine(t, b.Sweep))

	// The crash: the tower starts again from the persisted tip, below the dispute.
	e.start(t, persisted)
	for h := persisted + 1; h <= p+1; h++ {
		e.connect(t, h)
		e.wantTracker(t, id, p, true)
	}

	// It completes 100 blocks after the penalty's block, as any other.
	e.node.Generate(t, teos.IrrevocablyResolved-1)
	for h := p + 2; h < p+teos.IrrevocablyResolved; h++ {
		e.connect(t, h)
	}
	e.wantTracker(t, id, p, true)
	e.connect(t, p+teos.IrrevocablyResolved)
	if _, err := e.store.Appointment(id); err == nil {
		t.Fatal("not completed 100 blocks after the penalty")
	}
}

// The tower reaches a breach while catching up: bitcoind already has the penalty in a later
// block, and its child. The penalty's -25 is not a rejection while bitcoind is ahead; the
// penalty's block confirms the tracker.
func TestCatchUpPenaltyMinedAndSweptAhead(t *testing.T) {
	e := newBTCDEnv(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	start := e.tip(t)
	e.start(t, start)

	d := e.mine(t, b.Commitment)
	p := e.mine(t, b.Penalty)
	e.mine(t, b.Sweep)

	e.handle(t, id, b) // the watcher at d
	e.wantTracker(t, id, start, false)
	e.connect(t, d)
	e.wantTracker(t, id, start, false)
	e.connect(t, p)
	e.wantTracker(t, id, p, true)
	e.connect(t, p+1)
	e.wantTracker(t, id, p, true)
}

// Two blocks are reorganised out: the penalty's and the one after. The new branch replays the
// penalty one block higher and its child in the block after that. When the tower connects the
// new branch's first block, the re-sent penalty gets -25 from bitcoind, which is ahead; the next
// block confirms the tracker.
func TestReorgReplaysPenaltyHigherWithChild(t *testing.T) {
	e := newBTCDEnv(t)
	other := btcdtest.Start(t)
	otherClient := other.Client(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	start := e.tip(t)
	e.start(t, start)

	d := e.mine(t, b.Commitment)
	e.handle(t, id, b)
	e.connect(t, d)
	p := e.mine(t) // the penalty, from the mempool
	e.connect(t, p)
	e.wantTracker(t, id, p, true)
	e.connect(t, e.mine(t))

	// The other node gets the chain up to the dispute's block and builds a longer branch on it.
	copyBlocks(t, e.client, other.RPC(t), 1, d)
	other.Generate(t, 1)
	for _, tx := range []*wire.MsgTx{b.Penalty, b.Sweep} {
		if _, err := otherClient.SendRawTransaction(t.Context(), tx); err != nil {
			t.Fatal(err)
		}
		other.Generate(t, 1)
	}
	copyBlocks(t, otherClient, e.node.RPC(t), p, p+2)
	if got := e.tip(t); got != p+2 {
		t.Fatalf("tip at %d, want the other branch's %d", got, p+2)
	}

	for h := p + 1; h >= p; h-- {
		if err := e.r.BlockDisconnected(t.Context(), nil, h); err != nil {
			t.Fatal(err)
		}
	}
	e.connect(t, p) // empty: the tracker lost its confirmation, and its re-send gets -25
	e.wantTracker(t, id, p, false)
	if !contains(e.connect(t, p+1), b.Penalty.TxHash()) {
		t.Fatal("the new branch does not hold the penalty one block higher")
	}
	e.wantTracker(t, id, p+1, true)
	e.connect(t, p+2)
	e.wantTracker(t, id, p+1, true)
}

// copyBlocks submits from's blocks first..last to the node behind to.
func copyBlocks(t *testing.T, from *bitcoind.Client, to *rpcclient.Client, first, last uint32) {
	t.Helper()
	for h := first; h <= last; h++ {
		hash, err := from.BlockHash(t.Context(), h)
		if err != nil {
			t.Fatal(err)
		}
		block, err := from.Block(t.Context(), hash)
		if err != nil {
			t.Fatal(err)
		}
		if err := to.SubmitBlock(btcutil.NewBlock(block), nil); err != nil {
			t.Fatalf("submitblock %d: %v", h, err)
		}
	}
}

// The dispute, the penalty and the penalty's child are mined in one block, the tip: the
// watcher hands the breach over before the responder has seen that block, and the penalty's
// -25 is not a rejection.
func TestPenaltyAndChildInDisputeBlock(t *testing.T) {
	e := newBTCDEnv(t)
	b := e.node.NewBreach(t)
	id := e.appoint(t, b)
	start := e.tip(t)
	e.start(t, start)

	d := e.mine(t, b.Commitment, b.Penalty, b.Sweep)
	e.handle(t, id, b) // the watcher at d
	e.wantTracker(t, id, start, false)
	e.connect(t, d)
	e.wantTracker(t, id, d, true)
}
