package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TestBreachResponse follows two breaches from the appointment to the tracker's completion:
// the penalty reaches the mempool within a couple of polling intervals of the dispute's block,
// get_appointment then answers dispute_responded with the transactions, and 100 blocks after
// its confirmation the appointment is deleted and its slot refunded. The first breach is one
// block ahead of the second, so its completion tells when the tower is done with the block in
// which the second must still be there.
func TestBreachResponse(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()

	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	first, second := node.NewBreach(t), node.NewBreach(t)
	for _, b := range []*btcdtest.Breach{first, second} {
		alice.add(t, tw, breachAppointment(t, b))
		if code, got := alice.get(t, tw, locatorOf(b)); code != 200 || got["status"] != "being_watched" {
			t.Fatalf("get_appointment before the breach: %d %v", code, got)
		}
	}

	c.send(t, first.Commitment)
	block, _ := c.mine(t)
	mined := time.Now()
	if !blockHas(block, first.Commitment) {
		t.Fatal("first commitment not mined")
	}
	latency := c.waitInMempool(t, first.Penalty.TxHash(), mined)

	c.send(t, second.Commitment)
	block, firstConfirmed := c.mine(t)
	mined = time.Now()
	if !blockHas(block, first.Penalty, second.Commitment) {
		t.Fatal("first penalty and second commitment not mined together")
	}
	latency2 := c.waitInMempool(t, second.Penalty.TxHash(), mined)
	t.Logf("penalty in btcd's mempool %v and %v after the dispute's block (polling interval 100ms)", latency, latency2)
	if latency > penaltyDeadline || latency2 > penaltyDeadline {
		t.Fatalf("penalty took %v / %v, want under %v", latency, latency2, penaltyDeadline)
	}

	block, secondConfirmed := c.mine(t)
	if !blockHas(block, second.Penalty) {
		t.Fatal("second penalty not mined")
	}
	alice.wantResponded(t, tw, first)
	alice.waitResponded(t, tw, second)
	alice.wantSubscription(t, tw, slots-2, locatorOf(first), locatorOf(second))

	// 99 blocks on, the first penalty has 100 confirmations (counting its block) and the second
	// 99: the first completes, the second must stay.
	node.Generate(t, 99)
	if c.tip(t) != firstConfirmed+teos.IrrevocablyResolved || secondConfirmed != firstConfirmed+1 {
		t.Fatalf("tip %d, penalties confirmed at %d and %d", c.tip(t), firstConfirmed, secondConfirmed)
	}
	alice.waitGone(t, tw, locatorOf(first))
	alice.wantResponded(t, tw, second)
	alice.wantSubscription(t, tw, slots-1, locatorOf(second))

	node.Generate(t, 1)
	alice.waitGone(t, tw, locatorOf(second))
	alice.wantSubscription(t, tw, slots)
	tw.stop()
}

// TestBreachWhileTowerDown kills teosd, mines the breach while it is down, and finds the
// penalty broadcast when teosd comes back: it catches up before opening its API.
func TestBreachWhileTowerDown(t *testing.T) {
	t.Run("after a block", func(t *testing.T) { testBreachWhileTowerDown(t, true, 2) })
	// The tower has only ever seen the tip it started on: it must resume from there too, not
	// from bitcoind's tip at the restart.
	t.Run("before any block", func(t *testing.T) { testBreachWhileTowerDown(t, false, 2) })
	// Down for longer than the 100 blocks the chain monitor remembers: a long catch-up, not a
	// deep reorg.
	t.Run("far behind", func(t *testing.T) { testBreachWhileTowerDown(t, true, 250) })
}

// testBreachWhileTowerDown mines the breach and then after more blocks while teosd is down.
func testBreachWhileTowerDown(t *testing.T, blockFirst bool, after uint32) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()
	alice := newUser(t)
	alice.register(t, tw)
	b := node.NewBreach(t)
	alice.add(t, tw, breachAppointment(t, b))
	if blockFirst {
		_, h := c.mine(t)
		waitTowerAt(t, tw, h)
	}

	tw.kill()
	c.send(t, b.Commitment)
	block, _ := c.mine(t)
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	node.Generate(t, after) // the breach is not even the newest block
	tip := c.tip(t)

	tw.start()
	if !c.inMempool(t, b.Penalty.TxHash()) {
		t.Fatal("penalty not in the mempool once teosd answers /ping")
	}
	if h := towerHeight(t, tw); h != tip {
		t.Fatalf("tower at height %d after restart, tip %d", h, tip)
	}
	block, _ = c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	alice.wantResponded(t, tw, b)

	// A second crash, now with a tracker stored, loses nothing either.
	tw.kill()
	tw.start()
	alice.wantResponded(t, tw, b)
}

// TestInvalidBlobs mines three disputes in one block: Alice's blob does not decrypt, Bob's
// decrypts to something that is not a transaction, and Carol's (which Bob also holds) is a
// valid penalty. The valid penalty is broadcast for both of its holders; the two bad
// appointments are deleted and their slots refunded (as rust-teos v0.2 does), and the tower
// carries on.
func TestInvalidBlobs(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()

	alice, bob, carol := newUser(t), newUser(t), newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	bob.register(t, tw)
	carol.register(t, tw)
	undecryptable, garbage, valid := node.NewBreach(t), node.NewBreach(t), node.NewBreach(t)

	bad := randomAppointment(t, 300)
	bad.Locator = locatorOf(undecryptable)
	alice.add(t, tw, bad)
	notTx := teos.Appointment{
		Locator:       locatorOf(garbage),
		EncryptedBlob: wtcrypto.Encrypt([]byte("this is not a transaction"), garbage.Commitment.TxHash()),
		ToSelfDelay:   42,
	}
	bob.add(t, tw, notTx)
	bob.add(t, tw, breachAppointment(t, valid))
	carol.add(t, tw, breachAppointment(t, valid))

	for _, b := range []*wire.MsgTx{undecryptable.Commitment, garbage.Commitment, valid.Commitment} {
		c.send(t, b)
	}
	block, _ := c.mine(t)
	if !blockHas(block, undecryptable.Commitment, garbage.Commitment, valid.Commitment) {
		t.Fatal("the three commitments are not in one block")
	}
	c.waitInMempool(t, valid.Penalty.TxHash(), time.Now())
	alice.waitGone(t, tw, bad.Locator)
	bob.waitGone(t, tw, notTx.Locator)
	bob.wantResponded(t, tw, valid)
	carol.wantResponded(t, tw, valid)
	alice.wantSubscription(t, tw, slots)
	bob.wantSubscription(t, tw, slots-1, locatorOf(valid))
	carol.wantSubscription(t, tw, slots-1, locatorOf(valid))

	block, height := c.mine(t)
	if !blockHas(block, valid.Penalty) {
		t.Fatal("valid penalty not mined")
	}
	tw.alive()
	waitTowerAt(t, tw, height)
	if r := alice.add(t, tw, randomAppointment(t, 100)); r.StartBlock != height {
		t.Fatalf("appointment after the bad blobs starts at %d, want %d", r.StartBlock, height)
	}
	tw.stop()
}

// TestBreachPenaltyRefusedForNow: btcd refuses a free penalty for "insufficient priority", a
// -26 that passes by itself as the commitment's outputs age. The tower keeps the appointment as
// a tracker (get_appointment answers dispute_responded), re-sends the penalty every 6 blocks,
// and btcd takes and mines it once its priority is high enough. rust-teos, and teos-go before,
// deleted the appointment at the first refusal.
func TestBreachPenaltyRefusedForNow(t *testing.T) {
	node := startNode(t)
	c := newChain(t, node)
	tw := newTower(t, node, "")
	tw.start()

	alice := newUser(t)
	slots := alice.register(t, tw).AvailableSlots
	b := node.NewBreachPenaltyFee(t, 0)
	alice.add(t, tw, breachAppointment(t, b))

	c.send(t, b.Commitment)
	block, disputed := c.mine(t)
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	alice.waitResponded(t, tw, b)
	if c.inMempool(t, b.Penalty.TxHash()) {
		t.Fatal("btcd took the free penalty at once: nothing was refused")
	}
	if !strings.Contains(tw.logs(), "insufficient priority") {
		t.Fatalf("no refusal for insufficient priority in the tower's log\n%s", tw.logs())
	}

	// One block at a time, the tower done with each, until btcd has the penalty (a retry every 6
	// blocks; the first already succeeds for the commitment's 50 BTC, three leave room).
	var accepted uint32
	mined := false
	for range 3 * teos.ConfirmationsBeforeRetry {
		block, tip := c.mine(t)
		if blockHas(block, b.Penalty) {
			// Re-sent while the tower processed tip-1, after the check below: the API waits on a
			// block being processed for a bounded time only (blockfirst), so a slow block lets
			// waitTowerAt return before its re-sends.
			accepted, mined = tip-1, true
			break
		}
		waitTowerAt(t, tw, tip)
		if c.inMempool(t, b.Penalty.TxHash()) {
			accepted = tip
			break
		}
		alice.wantResponded(t, tw, b)
	}
	if accepted == 0 {
		t.Fatalf("penalty never re-sent and accepted\n%s", tw.logs())
	}
	t.Logf("dispute at %d, penalty accepted by btcd after block %d", disputed, accepted)

	if !mined {
		if block, _ = c.mine(t); !blockHas(block, b.Penalty) {
			t.Fatal("penalty not mined")
		}
	}
	alice.wantResponded(t, tw, b)
	alice.wantSubscription(t, tw, slots-1, locatorOf(b))
	tw.stop()
}
