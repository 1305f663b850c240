package e2e

import (
	"path/filepath"
	"testing"
	"time"

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
