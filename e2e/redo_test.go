package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/store"
)

// TestRestartRedoesBlocksAboveConfirmedPenalty: teosd persists its tip after the trackers (once
// a second in a long catch-up, at the end of each poll), so after a crash it processes again
// blocks it had processed. Here the tip is set back below the dispute's block while teosd is
// stopped, as a crash would leave it, with the penalty confirmed and its output swept. The
// blocks processed again are not a reorg: the appointment stays dispute_responded with its
// slot charged (before, the re-sent penalty got -25 and the appointment was deleted).
func TestRestartRedoesBlocksAboveConfirmedPenalty(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	br := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, br))
	persisted := c.tip(t)

	c.send(t, br.Commitment)
	if block, _ := c.mine(t); !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	c.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	if block, _ := c.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	c.send(t, br.Sweep)
	if block, _ := c.mine(t); !blockHas(block, br.Sweep) {
		t.Fatal("sweep not mined")
	}
	_, tip := c.mine(t)
	waitTowerAt(t, tw, tip) // done with the sweep's block
	alice.wantResponded(t, tw, br)
	tw.stop()

	s, err := store.Open(filepath.Join(tw.dataDir, "regtest", "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.SetLastBlock(c.blockHash(t, persisted), persisted)
	if cerr := s.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	tw.start()
	if h := towerHeight(t, tw); h != tip {
		t.Fatalf("tower at height %d after restart, tip %d", h, tip)
	}
	alice.wantResponded(t, tw, br)
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
	if loggedWith(tw.logs(), `msg="penalty rejected on re-send; dropping tracker"`) {
		t.Fatal("teosd dropped a tracker on the restart")
	}
}

// TestPenaltyMinedAndSweptWhileTowerDown: while teosd is down the dispute is mined, then the
// penalty (sent by the user's node) with a child spending it. Catching up, teosd reaches the
// dispute first: bitcoind answers the penalty -25, which is no rejection while bitcoind is
// ahead, and the next block confirms the tracker.
func TestPenaltyMinedAndSweptWhileTowerDown(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	br := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, br))

	tw.kill()
	c.send(t, br.Commitment)
	if block, _ := c.mine(t); !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	c.send(t, br.Penalty)
	c.send(t, br.Sweep)
	block, tip := c.mine(t)
	if !blockHas(block, br.Penalty, br.Sweep) {
		t.Fatal("penalty and sweep not mined")
	}

	tw.start()
	if h := towerHeight(t, tw); h != tip {
		t.Fatalf("tower at height %d after restart, tip %d", h, tip)
	}
	alice.wantResponded(t, tw, br)
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
}

// TestReorgReplaysPenaltyHigherWithChild: a 2-block reorg replaces the penalty's block and the
// next with a longer branch holding the penalty one block higher and a child spending it in the
// block after. When teosd connects the branch's first block, bitcoind answers the re-sent
// penalty -25 (every output spent); that is no rejection while bitcoind is ahead, and the
// next block confirms the tracker (before, the appointment was deleted).
func TestReorgReplaysPenaltyHigherWithChild(t *testing.T) {
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

	ca.send(t, br.Commitment)
	block, d := ca.mine(t)
	if !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	ca.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	if block, _ := ca.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	_, tip := ca.mine(t)
	waitTowerAt(t, tw, tip) // done with the penalty's block
	alice.wantResponded(t, tw, br)

	copyBlocks(t, ca, cb, 1, d)
	b.Generate(t, 1)
	cb.send(t, br.Penalty)
	if block, _ := cb.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined on B's branch")
	}
	cb.send(t, br.Sweep)
	if block, _ := cb.mine(t); !blockHas(block, br.Sweep) {
		t.Fatal("child not mined on B's branch")
	}
	copyBlocks(t, cb, ca, d+1, d+3)
	if ca.bestHash(t) != cb.bestHash(t) {
		t.Fatal("A did not adopt B's branch")
	}
	_, newTip := ca.mine(t)
	waitTowerAt(t, tw, newTip) // done with B's branch
	alice.wantResponded(t, tw, br)
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
	if !loggedWith(tw.logs(), `msg="penalty confirmed"`, "height="+strconv.Itoa(int(d+2))) {
		t.Fatal("teosd did not confirm the penalty in its new block")
	}
}
