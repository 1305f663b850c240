package e2e

import (
	"errors"
	"strconv"
	"strings"
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
		tw.startWait = 2 * time.Minute // its start includes the deep reorg's catch-up
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

// TestStartWaitsForBitcoindBehind: teosd starts while bitcoind's best block is below every
// block the tower remembers (here an invalidateblock 110 blocks below teosd's tip, the new
// branch not mined yet; a reindex looks the same). It waits for bitcoind, ports closed, and
// follows the branch once it is long enough. Before, it exited ("catch up with bitcoind: ...
// bitcoind is behind the tower ...; waiting for it"), so it came up only if restarted later.
func TestStartWaitsForBitcoindBehind(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	node.Generate(t, chainmon.Window)
	tw := newTower(t, node, "")
	tw.start()
	old := c.tip(t)
	waitTowerAt(t, tw, old)
	tw.stop()
	fork := old - chainmon.Window - 10
	bad := c.blockHash(t, fork+1)
	if err := c.rpc.InvalidateBlock(&bad); err != nil {
		t.Fatalf("invalidateblock: %v", err)
	}
	// Mine the new branch only once teosd says it waits, so it cannot have caught up first.
	mined := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(tw.logs(), `msg="waiting for bitcoind before opening the ports"`) {
			if time.Now().After(deadline) {
				mined <- errors.New("teosd logged no wait for bitcoind")
				return
			}
			select {
			case <-stop:
				mined <- errors.New("test ended")
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		_, err := c.rpc.Generate(old - fork + 5)
		mined <- err
	}()
	tw.startWait = 2 * time.Minute // its start includes the wait and a ~115-block catch-up (17 s seen at load ~9)
	tw.start()
	if err := <-mined; err != nil {
		t.Fatal(err)
	}
	tip := c.tip(t)
	waitTowerAt(t, tw, tip)
	if !loggedWith(tw.logs(), `msg="block disconnected"`, "height="+strconv.Itoa(int(fork+1))) {
		t.Fatalf("teosd did not disconnect the old branch down to height %d\n%s", fork+1, tw.logs())
	}
}
