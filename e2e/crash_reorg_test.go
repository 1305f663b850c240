package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/store"
)

// TestCrashBeforeTipThenReorgWhileDown: teosd handles the blocks holding two disputes (and, in
// one case, their penalties) and is killed before it saves its tip, so the persisted tip is the
// block below the disputes' (set back in the file, as the crash would leave it). While it is
// down, btcd adopts a longer branch from that block on that never saw the disputes and spends
// one dispute's input otherwise (another commitment won). After the restart no block is seen
// disconnected: teosd only connects the new branch on top of its persisted tip, above trackers
// stored for blocks that are gone. Then, as after a reorg seen live (TestReorgToOtherBranch):
// the surviving breach is answered (its penalty reaches the mempool and confirms) and the
// replaced one is watched again with its slot, not deleted and not tracked for ever.
func TestCrashBeforeTipThenReorgWhileDown(t *testing.T) {
	t.Run("penalties confirmed", func(t *testing.T) { testCrashBeforeTipThenReorg(t, true) })
	t.Run("penalties in the mempool", func(t *testing.T) { testCrashBeforeTipThenReorg(t, false) })
}

func testCrashBeforeTipThenReorg(t *testing.T, penaltiesMined bool) {
	a := startNode(t)
	ca := newChain(t, a)
	b := btcdtest.Start(t)
	cb := newChain(t, b)
	tw := newTower(t, a, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	kept, replaced := a.NewBreach(t), a.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, kept))
	alice.add(t, tw, breachAppointment(t, replaced))

	fork := ca.tip(t)
	copyBlocks(t, ca, cb, 1, fork)
	cb.send(t, spendCoinbase(t, a, cb, replaced.Commitment.TxIn[0].PreviousOutPoint, b.MiningAddr))

	ca.send(t, kept.Commitment)
	ca.send(t, replaced.Commitment)
	if block, _ := ca.mine(t); !blockHas(block, kept.Commitment, replaced.Commitment) {
		t.Fatal("commitments not mined")
	}
	ca.waitInMempool(t, kept.Penalty.TxHash(), time.Now())
	ca.waitInMempool(t, replaced.Penalty.TxHash(), time.Now())
	if penaltiesMined {
		if block, _ := ca.mine(t); !blockHas(block, kept.Penalty, replaced.Penalty) {
			t.Fatal("penalties not mined")
		}
	}
	_, h := ca.mine(t)
	waitTowerAt(t, tw, h) // done with the disputes' (and penalties') block
	alice.wantResponded(t, tw, kept)
	alice.wantResponded(t, tw, replaced)
	tw.kill()

	s, err := store.Open(filepath.Join(tw.dataDir, "regtest", "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.SetLastBlock(ca.blockHash(t, fork), fork)
	if cerr := s.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	branch := b.Generate(t, h-fork+1)
	copyBlocks(t, cb, ca, fork+1, h+1)
	if ca.bestHash(t) != *branch[len(branch)-1] {
		t.Fatal("A did not adopt B's branch")
	}
	if ca.inMempool(t, replaced.Commitment.TxHash()) || ca.inMempool(t, replaced.Penalty.TxHash()) {
		t.Fatal("A kept the replaced dispute or its penalty in its mempool")
	}

	tw.start()
	waitTowerAt(t, tw, ca.tip(t))
	// The replaced breach's tracker goes once bitcoind's -25 for its penalty is decided: at
	// once if the tracker was confirmed above the new blocks, after 6 blocks if unconfirmed.
	for i := 0; i < 8; i++ {
		_, got := alice.get(t, tw, locatorOf(replaced))
		if got["status"] == "being_watched" {
			break
		}
		_, tip := ca.mine(t)
		waitTowerAt(t, tw, tip)
	}
	waitFor(t, "replaced appointment watched again", func() bool {
		_, got := alice.get(t, tw, locatorOf(replaced))
		return got["status"] == "being_watched"
	})
	alice.wantResponded(t, tw, kept)
	alice.wantSubscription(t, tw, slots-2, locatorOf(kept), locatorOf(replaced))

	// The kept penalty is in A's mempool or already mined again; one more block confirms it.
	if _, _, ok := ca.confirmation(t, kept.Penalty.TxHash()); !ok {
		if !ca.inMempool(t, kept.Penalty.TxHash()) {
			t.Fatal("kept penalty neither mined nor in A's mempool")
		}
		if block, _ := ca.mine(t); !blockHas(block, kept.Penalty) {
			t.Fatal("kept penalty not mined")
		}
	}
	_, tip := ca.mine(t)
	waitTowerAt(t, tw, tip)
	alice.wantResponded(t, tw, kept)
	if ca.inMempool(t, replaced.Penalty.TxHash()) {
		t.Fatal("replaced penalty in the mempool without its dispute")
	}
}
