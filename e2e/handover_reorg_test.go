package e2e

import (
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestQueuedHandOverBlockLeftChainWhileDown: a late appointment's hand-over is queued (bitcoind
// fails every transaction call) and teosd stops with it in the queue. While teosd is down, the
// dispute's block is reorganised out by a branch that spends the dispute's input. After the
// restart the hand-over is dropped from the queue and the appointment stays watched, with its
// slot (docs/PROTOCOL.md 8.5), instead of being deleted for its penalty's -25. With the tip
// persisted below the dispute's block, as a crash can leave it, the restart never sees that
// block disconnected.
func TestQueuedHandOverBlockLeftChainWhileDown(t *testing.T) {
	t.Run("tip at the block", func(t *testing.T) { testQueuedHandOverBlockLeftChain(t, false) })
	t.Run("tip persisted below the block", func(t *testing.T) { testQueuedHandOverBlockLeftChain(t, true) })
}

func testQueuedHandOverBlockLeftChain(t *testing.T, tipBelow bool) {
	a := startNode(t)
	ca := newChain(t, a)
	b := btcdtest.Start(t)
	cb := newChain(t, b)
	filter := startRPCFilter(t, a.RPCHost)
	tw := newTower(t, a, "")
	tw.args = append(tw.args, "--btcrpcport", filter.port()) // the last value of a flag wins
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	br := a.NewBreach(t)

	fork := ca.tip(t)
	copyBlocks(t, ca, cb, 1, fork)
	cb.send(t, spendCoinbase(t, a, cb, br.Commitment.TxIn[0].PreviousOutPoint, b.MiningAddr))
	ca.send(t, br.Commitment)
	if block, _ := ca.mine(t); !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	_, tip := ca.mine(t)
	waitTowerAt(t, tw, tip) // done with the dispute's block

	txCalls := []string{"sendrawtransaction", "getrawtransaction"}
	filter.block(true, txCalls...)
	appt := breachAppointment(t, br)
	alice.add(t, tw, appt)
	waitFor(t, "the hand-over to reach bitcoind", func() bool { return filter.refused.Load() > 0 })
	tw.stop()

	path := filepath.Join(tw.dataDir, "regtest", "teos.db")
	s, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := s.QueuedHandOvers()
	if err == nil && tipBelow {
		err = s.SetLastBlock(ca.blockHash(t, fork), fork)
	}
	if cerr := s.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	id := teos.NewUUID(appt.Locator, alice.id)
	if len(queued) != 1 || queued[0].UUID != id {
		t.Fatalf("queued hand-overs %+v, want %s's", queued, id)
	}

	branch := b.Generate(t, tip-fork+1)
	copyBlocks(t, cb, ca, fork+1, tip+1)
	if ca.bestHash(t) != *branch[len(branch)-1] {
		t.Fatal("A did not adopt B's branch")
	}
	if ca.inMempool(t, br.Commitment.TxHash()) {
		t.Fatal("A kept the dispute in its mempool")
	}

	filter.block(false, txCalls...)
	tw.start()
	waitFor(t, "the queue drained", func() bool {
		return loggedWith(tw.logs(), `msg="queued hand-overs dropped: their dispute left the chain"`) ||
			loggedWith(tw.logs(), `msg="queued hand-over dropped: its dispute's block left the chain; watching the appointment again"`) ||
			alice.isGone(t, tw, appt.Locator)
	})
	if code, got := alice.get(t, tw, appt.Locator); code != 200 || got["status"] != "being_watched" {
		t.Fatalf("get_appointment: %d %v, want being_watched", code, got)
	}
	alice.wantSubscription(t, tw, slots-1, appt.Locator)
	if ca.inMempool(t, br.Penalty.TxHash()) {
		t.Fatal("penalty in the mempool without its dispute")
	}
	tw.stop()
	s, err = store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	queued, err = s.QueuedHandOvers()
	if cerr := s.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if len(queued) != 0 {
		t.Fatalf("queued hand-overs %+v, want none", queued)
	}
}
