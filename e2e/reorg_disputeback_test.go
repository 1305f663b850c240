package e2e

import (
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
)

// TestReorgDisputeLeftChainTriggersAgain: the dispute's block is reorganised out while the
// penalty waits in the mempool, and btcd cannot take the dispute back (the new branch spends its
// input), so the penalty leaves too. The stale re-send 6 blocks later gets -25 for both; with
// the dispute in no block the tower follows, only the tracker is deleted and the appointment is
// watched again (docs/PROTOCOL.md 8.5). When the chain goes back to the branch with the dispute,
// the watcher triggers the appointment again and the penalty is sent and mined.
func TestReorgDisputeLeftChainTriggersAgain(t *testing.T) {
	a := startNode(t)
	ca := newChain(t, a)
	b := btcdtest.Start(t)
	cb := newChain(t, b)
	tw := newTower(t, a, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	br := a.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, br))

	fork := ca.tip(t)
	copyBlocks(t, ca, cb, 1, fork)
	cb.send(t, spendCoinbase(t, a, cb, br.Commitment.TxIn[0].PreviousOutPoint, b.MiningAddr))

	ca.send(t, br.Commitment)
	block, _ := ca.mine(t)
	if !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	disputeBlock := block.BlockHash()
	ca.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	alice.waitResponded(t, tw, br)

	// B's longer branch spends the dispute's input: A drops the dispute and the penalty.
	branch := b.Generate(t, 2)
	copyBlocks(t, cb, ca, fork+1, fork+2)
	if ca.bestHash(t) != *branch[len(branch)-1] {
		t.Fatal("A did not adopt B's branch")
	}
	if ca.inMempool(t, br.Commitment.TxHash()) || ca.inMempool(t, br.Penalty.TxHash()) {
		t.Fatal("A kept the dispute or the penalty in its mempool")
	}
	// The tracker dates from fork (the responder's height at the breach): stale at fork+6.
	a.Generate(t, fork+teos.ConfirmationsBeforeRetry-ca.tip(t))
	waitFor(t, "appointment watched again", func() bool {
		_, got := alice.get(t, tw, locatorOf(br))
		return got["status"] == "being_watched"
	})
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
	if !loggedWith(tw.logs(), `msg="penalty's dispute is not on the chain; watching the appointment again"`) {
		t.Fatal("teosd did not log the untracking")
	}

	// A goes back to the branch holding the dispute.
	if err := ca.rpc.InvalidateBlock(branch[0]); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	if ca.bestHash(t) != disputeBlock {
		t.Fatal("A did not go back to the dispute's block")
	}
	alice.waitResponded(t, tw, br)
	ca.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	block, h := ca.mine(t)
	if !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	ca.mine(t)
	waitTowerAt(t, tw, h+1)
	alice.wantResponded(t, tw, br)
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
}
