package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
)

// TestReorgRemined invalidates the dispute's block after the penalty is confirmed. btcd puts
// the transactions of disconnected blocks back in its mempool and mines both again, one block
// lower than the penalty was (docs/BTCD.md 5.A). The tower follows: the appointment stays
// dispute_responded and completes 100 blocks after the new confirmation, not the old one.
func TestReorgRemined(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	b := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, b))

	c.send(t, b.Commitment)
	_, disputeHeight := c.mine(t)
	disputeBlock := c.blockHash(t, disputeHeight)
	c.waitInMempool(t, b.Penalty.TxHash(), time.Now())
	block, penaltyHeight := c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	// One more block, so the tower has surely processed the penalty's.
	_, h := c.mine(t)
	waitTowerAt(t, tw, h)
	alice.wantResponded(t, tw, b)

	if err := c.rpc.InvalidateBlock(&disputeBlock); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	node.Generate(t, 4) // longer than the old branch
	confirmedAt, confirmedIn, ok := c.confirmation(t, b.Penalty.TxHash())
	if !ok || confirmedAt != disputeHeight || confirmedIn == disputeBlock {
		t.Fatalf("penalty after the reorg: confirmed %v at %d in %s; want at %d in a new block", ok, confirmedAt, confirmedIn, disputeHeight)
	}
	tip := c.tip(t)
	waitTowerAt(t, tw, tip)
	alice.wantResponded(t, tw, b)
	if !strings.Contains(tw.logs(), "block disconnected") {
		t.Fatalf("the tower did not see the reorg\n%s", tw.logs())
	}

	// Completion counts from the new confirmation (one block earlier than the old one).
	node.Generate(t, confirmedAt+teos.IrrevocablyResolved-tip)
	if penaltyHeight+teos.IrrevocablyResolved <= c.tip(t) {
		t.Fatal("test mined up to the old completion height")
	}
	alice.waitGone(t, tw, locatorOf(b))
	alice.wantSubscription(t, tw, slots)
}

// TestReorgToOtherBranch confirms two penalties on node A, which teosd watches, then makes A
// adopt a longer branch mined by node B, which never saw them. In B's branch the coinbase one
// dispute spends is spent by another transaction, as when a different commitment of the same
// channel wins the race.
//
// The tower re-sends the surviving dispute and penalty (btcd has put them back in its mempool
// too, so only teosd's log shows the re-send); they are confirmed on the new chain, the
// appointment stays dispute_responded and completes 100 blocks after the new confirmation.
// The replaced dispute is rejected on re-send (its input is spent), and so is its penalty (-25):
// with the dispute in no block the tower follows, only the tracker goes; the appointment is
// watched again (docs/PROTOCOL.md 8.5), keeping its slot, and stays until its user expires.
//
// Blocks go from one node to the other with submitblock rather than P2P: while a btcd node
// syncs from a peer it does not update its mempool for connected blocks, so A would keep the
// replaced dispute in its mempool, and accept its re-send, although its input is spent.
func TestReorgToOtherBranch(t *testing.T) {
	two := startTwoBranches(t)
	a, ca, b, cb, tw, alice := two.a, two.ca, two.b, two.cb, two.tw, two.alice
	slots, kept, replaced, fork := two.slots, two.kept, two.replaced, two.fork
	if block, _ := ca.mine(t); !blockHas(block, kept.Penalty, replaced.Penalty) {
		t.Fatal("penalties not mined")
	}
	_, h := ca.mine(t)
	waitTowerAt(t, tw, h) // the tower has processed the penalties' block
	alice.wantResponded(t, tw, kept)
	alice.wantResponded(t, tw, replaced)

	branch := b.Generate(t, h-fork+1)
	if cb.tip(t) != h+1 {
		t.Fatalf("B's branch ends at %d, want %d", cb.tip(t), h+1)
	}
	branchStart, err := cb.rpc.GetBlock(branch[0])
	if err != nil {
		t.Fatal(err)
	}
	if blockHas(branchStart, kept.Commitment) || blockHas(branchStart, replaced.Commitment) || len(branchStart.Transactions) != 2 {
		t.Fatalf("B's first block should hold the conflicting spend only: %d txs", len(branchStart.Transactions))
	}
	copyBlocks(t, cb, ca, fork+1, h+1)
	if ca.bestHash(t) != *branch[len(branch)-1] {
		t.Fatal("A did not adopt B's branch")
	}
	tip := ca.tip(t)
	waitTowerAt(t, tw, tip)

	waitFor(t, "replaced appointment watched again", func() bool {
		_, got := alice.get(t, tw, locatorOf(replaced))
		return got["status"] == "being_watched"
	})
	alice.wantResponded(t, tw, kept)
	alice.wantSubscription(t, tw, slots-2, locatorOf(kept), locatorOf(replaced))
	if _, _, ok := ca.confirmation(t, kept.Penalty.TxHash()); ok || !ca.inMempool(t, kept.Penalty.TxHash()) {
		t.Fatal("the kept penalty should be waiting in A's mempool")
	}
	if !loggedWith(tw.logs(), `msg="penalty re-sent"`, "txid="+kept.Penalty.TxHash().String()) {
		t.Fatal("teosd did not re-send the kept penalty")
	}

	block, confirmedAt := ca.mine(t)
	if !blockHas(block, kept.Commitment, kept.Penalty) {
		t.Fatal("kept dispute and penalty not mined on the new branch")
	}
	if at, _, ok := ca.confirmation(t, kept.Penalty.TxHash()); !ok || at != confirmedAt {
		t.Fatalf("penalty confirmed %v at %d, want at %d", ok, at, confirmedAt)
	}
	alice.wantResponded(t, tw, kept)

	// The old confirmation was 3 blocks lower: the tracker must outlive its 100 blocks.
	a.Generate(t, confirmedAt+teos.IrrevocablyResolved-1-ca.tip(t))
	waitTowerAt(t, tw, ca.tip(t)) // done with the block before
	alice.wantResponded(t, tw, kept)
	a.Generate(t, 1)
	alice.waitGone(t, tw, locatorOf(kept))
	alice.wantSubscription(t, tw, slots-1, locatorOf(replaced)) // only the completed appointment is refunded
}

// twoBranches is the set-up of the tests that reorganise a breach away: node A mines two
// disputes, both answered by the tower (penalties in A's mempool); node B holds A's chain up to
// fork and, in its mempool, a transaction spending the replaced dispute's input.
type twoBranches struct {
	a, b           *btcdtest.Node
	ca, cb         *chain
	tw             *tower
	alice          *user
	slots          uint32
	kept, replaced *btcdtest.Breach
	fork           uint32
}

func startTwoBranches(t *testing.T) *twoBranches {
	s := &twoBranches{a: startNode(t), b: btcdtest.Start(t)}
	s.ca, s.cb = newChain(t, s.a), newChain(t, s.b)
	s.tw = newTower(t, s.a, "")
	s.tw.start()
	s.alice = newUser(t)
	s.slots = s.alice.register(t, s.tw).AvailableSlots
	s.kept, s.replaced = s.a.NewBreach(t), s.a.NewBreach(t)
	s.alice.add(t, s.tw, breachAppointment(t, s.kept))
	s.alice.add(t, s.tw, breachAppointment(t, s.replaced))

	s.fork = s.ca.tip(t)
	copyBlocks(t, s.ca, s.cb, 1, s.fork)
	s.cb.send(t, spendCoinbase(t, s.a, s.cb, s.replaced.Commitment.TxIn[0].PreviousOutPoint, s.b.MiningAddr))

	s.ca.send(t, s.kept.Commitment)
	s.ca.send(t, s.replaced.Commitment)
	if block, _ := s.ca.mine(t); !blockHas(block, s.kept.Commitment, s.replaced.Commitment) {
		t.Fatal("commitments not mined")
	}
	s.ca.waitInMempool(t, s.kept.Penalty.TxHash(), time.Now())
	s.ca.waitInMempool(t, s.replaced.Penalty.TxHash(), time.Now())
	return s
}

// copyBlocks hands the blocks at heights first..last of from's main chain to to's node.
func copyBlocks(t testing.TB, from, to *chain, first, last uint32) {
	t.Helper()
	for h := first; h <= last; h++ {
		hash := from.blockHash(t, h)
		block, err := from.rpc.GetBlock(&hash)
		if err != nil {
			t.Fatalf("getblock %d: %v", h, err)
		}
		if err := to.rpc.SubmitBlock(btcutil.NewBlock(block), nil); err != nil {
			t.Fatalf("submitblock %d: %v", h, err)
		}
	}
}

func (c *chain) blockHash(t testing.TB, height uint32) chainhash.Hash {
	t.Helper()
	h, err := c.rpc.GetBlockHash(int64(height))
	if err != nil {
		t.Fatalf("getblockhash %d: %v", height, err)
	}
	return *h
}

func (c *chain) bestHash(t testing.TB) chainhash.Hash {
	t.Helper()
	h, err := c.rpc.GetBestBlockHash()
	if err != nil {
		t.Fatalf("getbestblockhash: %v", err)
	}
	return *h
}

// spendCoinbase returns a transaction, valid on c's node, that sends the coinbase output op
// (mined by owner) to dest.
func spendCoinbase(t testing.TB, owner *btcdtest.Node, c *chain, op wire.OutPoint, dest btcutil.Address) *wire.MsgTx {
	t.Helper()
	prev, err := c.rpc.GetRawTransaction(&op.Hash)
	if err != nil {
		t.Fatalf("getrawtransaction %s: %v", op.Hash, err)
	}
	out := prev.MsgTx().TxOut[op.Index]
	destScript, err := txscript.PayToAddrScript(dest)
	if err != nil {
		t.Fatal(err)
	}
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(&op, nil, nil))
	tx.AddTxOut(wire.NewTxOut(out.Value-10_000, destScript))
	sig, err := txscript.SignatureScript(tx, 0, out.PkScript, txscript.SigHashAll, owner.MinerKey, true)
	if err != nil {
		t.Fatalf("sign coinbase spend: %v", err)
	}
	tx.TxIn[0].SignatureScript = sig
	return tx
}

// loggedWith reports whether one line of logs holds every part.
func loggedWith(logs string, parts ...string) bool {
	for line := range strings.Lines(logs) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
