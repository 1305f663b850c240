package e2e

import (
	"strconv"
	"testing"
	"time"

	chainmon "github.com/teos-go/teos/internal/chain"
	"github.com/teos-go/teos/pkg/teos"
)

// TestReorgDeeperThanWindow: the penalty is confirmed, and 98 blocks later (two short of its
// completion) the dispute's block is invalidated and a longer branch mined, 101 blocks deep
// from teosd's tip: deeper than the 100 blocks the chain monitor remembers. btcd mines the
// dispute and penalty again in the branch's first block. teosd follows the reorg (it refused
// it on every poll before, stuck at its old tip for good), and the tracker completes 100
// blocks after the new confirmation, refunding the slot. Also when the reorg happens while
// teosd is stopped: it refused to start before (its first catch-up failed the same way).
func TestReorgDeeperThanWindow(t *testing.T) {
	t.Run("live", func(t *testing.T) { testReorgDeeperThanWindow(t, false) })
	t.Run("while down", func(t *testing.T) { testReorgDeeperThanWindow(t, true) })
}

func testReorgDeeperThanWindow(t *testing.T, whileDown bool) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	br := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, br))

	c.send(t, br.Commitment)
	_, d := c.mine(t)
	disputeBlock := c.blockHash(t, d)
	c.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	if block, _ := c.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	node.Generate(t, teos.IrrevocablyResolved-2)
	old := c.tip(t)
	waitTowerAt(t, tw, old)
	alice.wantResponded(t, tw, br)
	if whileDown {
		tw.stop()
	}

	if err := c.rpc.InvalidateBlock(&disputeBlock); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	node.Generate(t, old-d+2)
	if at, _, ok := c.confirmation(t, br.Penalty.TxHash()); !ok || at != d {
		t.Fatalf("penalty after the reorg: confirmed %v at %d, want at %d", ok, at, d)
	}
	tip := c.tip(t)
	if tip-(d-1) <= chainmon.Window {
		t.Fatalf("reorg %d blocks deep, want more than %d", tip-(d-1), chainmon.Window)
	}
	if whileDown {
		tw.start()
	}
	waitTowerAt(t, tw, tip)
	alice.waitGone(t, tw, locatorOf(br)) // d+100 <= tip: completed during the catch-up
	alice.wantSubscription(t, tw, slots)
	if !loggedWith(tw.logs(), `msg="following a reorg deeper than the last blocks remembered"`) ||
		!loggedWith(tw.logs(), `msg="block disconnected"`, "height="+strconv.Itoa(int(d))) {
		t.Fatalf("teosd did not disconnect the old branch down to the dispute's block\n%s", tw.logs())
	}
}
