package watcher

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// node is a small bitcoind for the chain monitor and the carrier: a block tree with a best
// tip, a mempool, and a hook run on sendrawtransaction.
type node struct {
	mu      sync.Mutex
	blocks  map[chainhash.Hash]*wire.MsgBlock
	heights map[chainhash.Hash]uint32
	best    chainhash.Hash
	nonce   uint32
	mempool map[chainhash.Hash]*wire.MsgTx
	sent    []chainhash.Hash
	onSend  func(tx *wire.MsgTx) (carrier.Result, bool) // scripted answer, if ok
}

func newNode(height uint32) *node {
	n := &node{blocks: map[chainhash.Hash]*wire.MsgBlock{}, heights: map[chainhash.Hash]uint32{}, mempool: map[chainhash.Hash]*wire.MsgTx{}}
	prev := chainhash.Hash{}
	for h := uint32(0); h <= height; h++ {
		prev = n.mine(prev)
	}
	return n
}

// mine adds a block with txs on prev, makes it the best tip, and returns its hash. The caller
// holds mu, or the node is not shared yet.
func (n *node) mine(prev chainhash.Hash, txs ...*wire.MsgTx) chainhash.Hash {
	n.nonce++
	b := wire.NewMsgBlock(wire.NewBlockHeader(1, &prev, &chainhash.Hash{}, 0, n.nonce))
	b.Transactions = append([]*wire.MsgTx{newTx(0xb0000000 + n.nonce)}, txs...)
	h := b.BlockHash()
	n.blocks[h] = b
	if _, ok := n.blocks[prev]; ok {
		n.heights[h] = n.heights[prev] + 1
	}
	for _, tx := range txs {
		delete(n.mempool, tx.TxHash())
	}
	n.best = h
	return h
}

func (n *node) BestBlockHash(context.Context) (chainhash.Hash, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.best, nil
}

func (n *node) BlockHeader(_ context.Context, h chainhash.Hash) (*wire.BlockHeader, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, ok := n.blocks[h]
	if !ok {
		return nil, fmt.Errorf("unknown block %s", h)
	}
	hdr := b.Header
	return &hdr, nil
}

func (n *node) Block(_ context.Context, h chainhash.Hash) (*wire.MsgBlock, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, ok := n.blocks[h]
	if !ok {
		return nil, fmt.Errorf("unknown block %s", h)
	}
	return b, nil
}

func (n *node) BlockHeight(_ context.Context, h chainhash.Hash) (uint32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.heights[h], nil
}

func (n *node) Send(_ context.Context, tx *wire.MsgTx) (carrier.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, tx.TxHash())
	if n.onSend != nil {
		if res, ok := n.onSend(tx); ok {
			return res, nil
		}
	}
	n.mempool[tx.TxHash()] = tx
	return carrier.Result{Status: carrier.StatusInMempool}, nil
}

func (n *node) InMempool(_ context.Context, txid chainhash.Hash) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.mempool[txid]
	return ok, nil
}

func (n *node) ClearCache() {}

func (n *node) takeSent() []chainhash.Hash {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sent
	n.sent = nil
	return s
}

// Regression test for issue 11. The tower is at height H, the dispute of a late appointment
// in its last block. The hand-over asks bitcoind, which meanwhile mined block H+1 holding the
// penalty and answers -27; then H+1 is reorganised out. The penalty must be sent again, both
// when the tower processed H+1 before the reorg (at once) and when it never saw it (once stale). Everything runs as
// in teosd: real store, gatekeeper, watcher, responder and chain monitor; only bitcoind is
// fake. The add itself must not reach the responder: only the monitor's goroutine does.
func TestLatePenaltyAlreadyMinedThenReorgedOutIsResent(t *testing.T) {
	for _, seen := range []bool{true, false} {
		t.Run(map[bool]string{true: "H+1 processed before the reorg", false: "H+1 never processed"}[seen], func(t *testing.T) {
			const height = 150
			ctx := t.Context()
			n := newNode(height - 1)
			b := newBreach(7)
			n.mine(n.best, b.dispute) // block H holds the dispute

			s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			gk := gatekeeper.New(gatekeeper.Config{Store: s, SubscriptionSlots: 10, SubscriptionDuration: 1000, ExpiryDelta: 6}, height)
			resp := responder.New(responder.Config{Store: s, Carrier: n}, height)
			key, _ := btcec.NewPrivateKey()
			w := New(Config{Store: s, Gatekeeper: gk, TowerKey: key, Responder: resp})
			mon, err := chain.New(ctx, chain.Config{Source: n, Store: s, Listeners: []chain.Listener{gk, w, resp}}, n.best, height)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range mon.Recent() { // as teosd seeds them at start
				blk, _ := n.Block(ctx, ref.Hash)
				resp.SeedBlock(blk, ref.Height)
				w.SeedBlock(blk)
			}
			hAt := n.best

			sk, _ := btcec.NewPrivateKey()
			user := teos.UserIDFromPubKey(sk.PubKey())
			if _, err := w.Register(user[:]); err != nil {
				t.Fatal(err)
			}
			a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
			if _, err := w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), sk)); err != nil {
				t.Fatal(err)
			}
			if sent := n.takeSent(); len(sent) != 0 {
				t.Fatalf("the add goroutine sent %v", sent)
			}

			// bitcoind mines H+1 with the penalty while the hand-over waits for its answer.
			var hPlus1 chainhash.Hash
			n.onSend = func(tx *wire.MsgTx) (carrier.Result, bool) {
				if tx.TxHash() != b.penalty.TxHash() {
					return carrier.Result{}, false
				}
				n.onSend = nil
				hPlus1 = n.mine(n.best, tx)
				return carrier.Result{Status: carrier.StatusIrrevocablyResolved}, true
			}
			<-w.HandOversQueued() // the monitor is woken; it polls (nothing new yet) and drains
			if err := mon.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.HandOverQueued(ctx); err != nil {
				t.Fatal(err)
			}
			if sent := n.takeSent(); !slices.Equal(sent, []chainhash.Hash{b.penalty.TxHash()}) {
				t.Fatalf("sent %v, want the penalty", sent)
			}
			id := teos.NewUUID(b.loc, user)
			if _, err := s.Tracker(id); err != nil {
				t.Fatalf("no tracker after the hand-over: %v", err)
			}

			if seen {
				if err := mon.Poll(ctx); err != nil { // the tower processes H+1
					t.Fatal(err)
				}
				if tr, _ := s.Tracker(id); !tr.Confirmed || tr.Height != height+1 {
					t.Fatalf("tracker (%d, %v), want confirmed at %d", tr.Height, tr.Confirmed, height+1)
				}
			}
			// The reorg: H+1 is replaced by a longer branch without the penalty, which goes back
			// to bitcoind's mempool.
			n.mu.Lock()
			n.mempool[b.penalty.TxHash()] = b.penalty
			n.mine(n.mine(hAt))
			n.mu.Unlock()
			if err := mon.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := mon.Height(); got != height+2 || n.best == hPlus1 {
				t.Fatalf("tower at %d, want %d on the new branch", got, height+2)
			}
			sent := n.takeSent()
			if !seen {
				// Never seen confirmed, the tracker waits in the mempool state since H: it is
				// re-sent once it is stale, 6 blocks on.
				if len(sent) != 0 {
					t.Fatalf("after the reorg sent %v, want nothing before the penalty is stale", sent)
				}
				n.mu.Lock()
				for range teos.ConfirmationsBeforeRetry - 2 {
					n.mine(n.best)
				}
				n.mu.Unlock()
				if err := mon.Poll(ctx); err != nil {
					t.Fatal(err)
				}
				sent = n.takeSent()
			}
			if !slices.Contains(sent, b.penalty.TxHash()) {
				t.Fatalf("after the reorg sent %v, want the penalty re-sent", sent)
			}
			if tr, _ := s.Tracker(id); tr.Confirmed {
				t.Fatalf("tracker (%d, %v), want back in the mempool", tr.Height, tr.Confirmed)
			}
		})
	}
}
