package e2e

import (
	"encoding/hex"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	two := startTwoBranches(t)
	ca, b, cb, tw, alice := two.ca, two.b, two.cb, two.tw, two.alice
	slots, kept, replaced, fork := two.slots, two.kept, two.replaced, two.fork
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

// TestKillAfterPenaltyBroadcast: teosd is SIGKILLed the moment btcd has its penalty, before
// the tracker (and the tip) is stored: the proxy hands the penalty to btcd and holds teosd's
// call until the kill. After the restart teosd processes the dispute's block again and finds
// the penalty in the mempool: the appointment is dispute_responded, its slot charged once, and
// the penalty confirms. If instead, while teosd is down, the dispute's block is replaced by a
// branch spending the dispute's input otherwise, the appointment stays watched with its slot.
func TestKillAfterPenaltyBroadcast(t *testing.T) {
	t.Run("restart", func(t *testing.T) { testKillAfterPenaltyBroadcast(t, false) })
	t.Run("reorg while down", func(t *testing.T) { testKillAfterPenaltyBroadcast(t, true) })
}

func testKillAfterPenaltyBroadcast(t *testing.T, reorg bool) {
	a := startNode(t)
	ca := newChain(t, a)
	b := btcdtest.Start(t)
	cb := newChain(t, b)
	br := a.NewBreach(t)
	penaltyHex := `"` + hex.EncodeToString(txBytes(t, br.Penalty)) + `"`
	hit, killed := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	proxy := startRPCProxy(t, a.RPCHost, func(w http.ResponseWriter, _ *http.Request, call *rpcCall) bool {
		if call.Method != "sendrawtransaction" || len(call.Params) == 0 || string(call.Params[0]) != penaltyHex ||
			!armed.CompareAndSwap(true, false) {
			return false
		}
		if _, err := ca.rpc.SendRawTransaction(br.Penalty, true); err != nil {
			t.Errorf("hand the penalty to btcd: %v", err)
		}
		close(hit)
		<-killed
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return true
	})
	var release sync.Once
	kill := func() { release.Do(func() { close(killed) }) }
	t.Cleanup(kill) // before the proxy's Close, which waits for the held call
	tw := newTower(t, a, "")
	tw.args = append(tw.args, "--btcrpcport", proxy.port())
	tw.start()
	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	alice.add(t, tw, breachAppointment(t, br))

	fork := ca.tip(t)
	copyBlocks(t, ca, cb, 1, fork)
	cb.send(t, spendCoinbase(t, a, cb, br.Commitment.TxIn[0].PreviousOutPoint, b.MiningAddr))
	ca.send(t, br.Commitment)
	if block, _ := ca.mine(t); !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	select {
	case <-hit:
	case <-time.After(30 * time.Second):
		t.Fatal("teosd sent no penalty")
	}
	tw.kill()
	kill()
	if !ca.inMempool(t, br.Penalty.TxHash()) {
		t.Fatal("penalty not in btcd's mempool")
	}

	if reorg {
		branch := b.Generate(t, 2)
		copyBlocks(t, cb, ca, fork+1, fork+2)
		if ca.bestHash(t) != *branch[len(branch)-1] {
			t.Fatal("A did not adopt B's branch")
		}
	}
	tw.start()
	waitTowerAt(t, tw, ca.tip(t))
	if reorg {
		if code, got := alice.get(t, tw, locatorOf(br)); code != 200 || got["status"] != "being_watched" {
			t.Fatalf("get_appointment: %d %v, want being_watched", code, got)
		}
		alice.wantSubscription(t, tw, slots-1, locatorOf(br))
		if ca.inMempool(t, br.Penalty.TxHash()) {
			t.Fatal("penalty in the mempool without its dispute")
		}
		return
	}
	alice.waitResponded(t, tw, br)
	alice.wantSubscription(t, tw, slots-1, locatorOf(br))
	if block, _ := ca.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	_, tip := ca.mine(t)
	waitTowerAt(t, tw, tip)
	alice.wantResponded(t, tw, br)
	if loggedWith(tw.logs(), `msg="penalty rejected`) {
		t.Fatal("teosd took its own broadcast for a rejection")
	}
}

// TestReorgDoubleSpendsPenalty: the penalty is confirmed, then a reorg keeps the dispute but
// replaces the penalty's block with a branch holding another transaction that spends one of
// the penalty's inputs (as a counterparty's claim of an HTLC output would): the penalty can
// never be mined on that chain. teosd re-sends it, gets -25 with the dispute on the chain, and
// deletes the appointment refunding its slot (as rust-teos v0.2 does), once at bitcoind's tip;
// also when the reorg happened while teosd was down after a crash that left its tip below the
// dispute's block.
func TestReorgDoubleSpendsPenalty(t *testing.T) {
	t.Run("live", func(t *testing.T) { testReorgDoubleSpendsPenalty(t, false) })
	t.Run("while down, tip below the dispute", func(t *testing.T) { testReorgDoubleSpendsPenalty(t, true) })
}

func testReorgDoubleSpendsPenalty(t *testing.T, whileDown bool) {
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
	if block, _ := ca.mine(t); !blockHas(block, br.Commitment) {
		t.Fatal("dispute not mined")
	}
	d := ca.tip(t)
	ca.waitInMempool(t, br.Penalty.TxHash(), time.Now())
	if block, _ := ca.mine(t); !blockHas(block, br.Penalty) {
		t.Fatal("penalty not mined")
	}
	_, h := ca.mine(t)
	waitTowerAt(t, tw, h)
	alice.wantResponded(t, tw, br)

	copyBlocks(t, ca, cb, 1, d)
	cb.send(t, br.Conflict)
	branch := b.Generate(t, h-d+1)
	if first, err := cb.rpc.GetBlock(branch[0]); err != nil || !blockHas(first, br.Conflict) {
		t.Fatalf("conflict not in B's first block (%v)", err)
	}
	if whileDown {
		tw.kill()
		s, err := store.Open(filepath.Join(tw.dataDir, "regtest", "teos.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.SetLastBlock(ca.blockHash(t, d-1), d-1)
		if cerr := s.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
	}
	copyBlocks(t, cb, ca, d+1, h+1)
	if ca.bestHash(t) != *branch[len(branch)-1] {
		t.Fatal("A did not adopt B's branch")
	}
	if whileDown {
		tw.start()
	}
	waitTowerAt(t, tw, ca.tip(t))
	alice.waitGone(t, tw, locatorOf(br))
	alice.wantSubscription(t, tw, slots)
	if ca.inMempool(t, br.Penalty.TxHash()) {
		t.Fatal("double-spent penalty in the mempool")
	}
	if !loggedWith(tw.logs(), `msg="penalty rejected on re-send; dropping tracker"`, "txid="+br.Penalty.TxHash().String()) {
		t.Fatalf("teosd did not drop the tracker for the penalty's rejection\n%s", tw.logs())
	}
}
