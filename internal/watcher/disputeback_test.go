package watcher

import (
	"context"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// mempoolCarrier is a small bitcoind for the real responder: a sent transaction enters the
// mempool unless a result is scripted for it.
type mempoolCarrier struct {
	mu      sync.Mutex
	results map[chainhash.Hash]carrier.Result
	mempool map[chainhash.Hash]bool
}

func (c *mempoolCarrier) Send(_ context.Context, tx *wire.MsgTx) (carrier.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	res, ok := c.results[tx.TxHash()]
	if !ok {
		res = carrier.Result{Status: carrier.StatusInMempool}
	}
	if res.Status == carrier.StatusInMempool {
		c.mempool[tx.TxHash()] = true
	}
	return res, nil
}

func (c *mempoolCarrier) InMempool(_ context.Context, txid chainhash.Hash) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mempool[txid], nil
}

func (c *mempoolCarrier) ClearCache() {}

func (c *mempoolCarrier) script(tx *wire.MsgTx, res carrier.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results[tx.TxHash()] = res
	delete(c.mempool, tx.TxHash())
}

type listener interface {
	BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error
	BlockDisconnected(ctx context.Context, header *wire.BlockHeader, height uint32) error
}

// towerChain feeds blocks to the gatekeeper, watcher and responder in teosd's order.
type towerChain struct {
	t         *testing.T
	listeners []listener
	hashes    []chainhash.Hash // hashes[i] is the block at testHeight+i
	headers   []wire.BlockHeader
	nonce     uint32
}

func (c *towerChain) height() uint32 { return testHeight + uint32(len(c.hashes)) - 1 }

func (c *towerChain) connect(txs ...*wire.MsgTx) {
	c.t.Helper()
	c.nonce++
	b := wire.NewMsgBlock(wire.NewBlockHeader(1, &c.hashes[len(c.hashes)-1], &chainhash.Hash{}, 0, c.nonce))
	b.Transactions = append(append(b.Transactions, newTx(0xb10c0000+c.nonce)), txs...)
	h := c.height() + 1
	for _, l := range c.listeners {
		if err := l.BlockConnected(c.t.Context(), b, h); err != nil {
			c.t.Fatalf("BlockConnected(%d): %v", h, err)
		}
	}
	c.hashes = append(c.hashes, b.BlockHash())
	c.headers = append(c.headers, b.Header)
}

func (c *towerChain) disconnect() {
	c.t.Helper()
	h, hdr := c.height(), c.headers[len(c.headers)-1]
	for _, l := range c.listeners {
		if err := l.BlockDisconnected(c.t.Context(), &hdr, h); err != nil {
			c.t.Fatalf("BlockDisconnected(%d): %v", h, err)
		}
	}
	c.hashes, c.headers = c.hashes[:len(c.hashes)-1], c.headers[:len(c.headers)-1]
}

// The reviewer's case end to end with the real watcher and responder: the dispute's block is
// reorganised out while the penalty waits unconfirmed, bitcoind takes back neither (the
// dispute's fee is below its mempool minimum), and the stale re-send gets -25 for the penalty.
// The appointment loses its tracker only, looks exactly like an untriggered one (get_appointment,
// counts, slots), and triggers again when the cheater gets the dispute mined later.
func TestDisputeReorgedOutTriggersAgain(t *testing.T) {
	btc := &mempoolCarrier{results: map[chainhash.Hash]carrier.Result{}, mempool: map[chainhash.Hash]bool{}}
	var resp *responder.Responder
	f, gk := newFixtureWith(t, func(s *store.Store) Responder {
		resp = responder.New(responder.Config{Store: s, Carrier: btc}, testHeight)
		return resp
	})
	s, w := f.store, f.w
	chain := &towerChain{t: t, listeners: []listener{gk, w, resp}, hashes: []chainhash.Hash{{0xaa}}, headers: []wire.BlockHeader{{}}}

	u := f.newUser()
	bc := newBreach(7)
	f.add(u, bc.loc, bc.blob)
	id := uuid(bc.loc, u)
	slots := f.slots(u)
	get := func() (*store.Appointment, *store.Tracker) {
		t.Helper()
		a, tr, err := w.GetAppointment(bc.loc, wtcrypto.SignMessage(teos.GetAppointmentMessage(bc.loc), u.sk))
		if err != nil {
			t.Fatalf("GetAppointment: %v", err)
		}
		return a, tr
	}

	chain.connect(bc.dispute)
	if _, tr := get(); tr == nil || tr.DisputeTxID != bc.dispute.TxHash() {
		t.Fatalf("not triggered by the dispute's block: tracker %+v", tr)
	}

	chain.disconnect()
	btc.script(bc.dispute, carrier.Result{Status: carrier.StatusRefusedForNow, Code: carrier.CodeVerifyRejected, Reason: "mempool min fee not met"})
	btc.script(bc.penalty, carrier.Result{Status: carrier.StatusRejected, Code: carrier.CodeVerifyError})
	for range teos.ConfirmationsBeforeRetry {
		chain.connect()
	}
	if !f.stored(id) || f.hasTracker(id) {
		t.Fatalf("after the stale re-send: stored %v, tracker %v; want the appointment without tracker", f.stored(id), f.hasTracker(id))
	}
	if a, tr := get(); a == nil || tr != nil {
		t.Fatalf("get_appointment = %v, tracker %+v; want the appointment, untriggered", a, tr)
	}
	if _, watched, trackers, err := s.Counts(); err != nil || watched != 1 || trackers != 0 {
		t.Fatalf("Counts: watched %d, trackers %d, %v; want 1, 0", watched, trackers, err)
	}
	if got := f.slots(u); got != slots {
		t.Fatalf("slots = %d, want %d", got, slots)
	}

	// The cheater gets the dispute mined (a CPFP); bitcoind now takes the penalty.
	btc.script(bc.penalty, carrier.Result{Status: carrier.StatusInMempool})
	chain.connect()
	chain.connect(bc.dispute)
	_, tr := get()
	if tr == nil || tr.PenaltyTxID != bc.penalty.TxHash() {
		t.Fatalf("the re-mined dispute did not trigger the appointment again: tracker %+v", tr)
	}
	chain.connect(bc.penalty)
	if _, tr := get(); tr == nil || !tr.Confirmed || tr.Height != chain.height() {
		t.Fatalf("penalty not confirmed in its block: tracker %+v", tr)
	}
}
