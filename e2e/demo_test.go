package e2e

import (
	"encoding/hex"
	"testing"
	"time"
)

// TestDemo is `make demo`: one breach from start to finish on a private regtest chain, told
// step by step, with Alice using the teos-client binary as a user would. Every step is also
// checked, so the demo cannot tell a story that did not happen. btcd and teosd are stopped at
// the end, and die with the test process if it is interrupted (btcdtest.DieWithParent).
func TestDemo(t *testing.T) {
	start := time.Now()
	node := startNode(t)
	c := newChain(t, node)
	t.Logf("1. btcd (regtest) up at %s, chain height %d", node.RPCHost, c.tip(t))

	tw := newTower(t, node, "")
	tw.start()
	t.Logf("2. teosd up, API %s, tower id:", tw.apiURL)
	t.Logf("     %s", tw.id)

	alice := newClientCLI(t, tw)
	reg := alice.run("--towerid", tw.id.String(), "register")
	if reg["tower_id"] != tw.id.String() {
		t.Fatalf("register printed %v", reg)
	}
	t.Logf("3. $ teos-client register    (receipt checked against the tower id)")
	t.Logf("     Alice %s: %v slots, blocks %v to %v", reg["user_id"], reg["available_slots"],
		reg["subscription_start"], reg["subscription_expiry"])

	b := node.NewBreach(t)
	commitment, penalty := b.Commitment.TxHash(), b.Penalty.TxHash()
	t.Logf("4. Alice's channel has an old, revoked commitment and the penalty that sweeps it:")
	t.Logf("     commitment %s", commitment)
	t.Logf("     penalty    %s", penalty)

	loc := locatorOf(b).String()
	rec := alice.run("add_appointment", "--commitment-txid", commitment.String(),
		"--penalty", hex.EncodeToString(txBytes(t, b.Penalty)), "--to-self-delay", "144")
	if rec["locator"] != loc {
		t.Fatalf("add_appointment printed %v", rec)
	}
	t.Logf("5. $ teos-client add_appointment --commitment-txid ... --penalty ...")
	t.Logf("     locator %s (half the commitment txid), watched from block %v", loc, rec["start_block"])
	t.Logf("     the penalty travels encrypted under the full txid: the tower cannot read it yet")
	if got := alice.run("get_appointment", loc); got["status"] != "being_watched" {
		t.Fatalf("get_appointment printed %v", got)
	}
	t.Logf("6. $ teos-client get_appointment %s  ->  being_watched", loc)

	c.send(t, b.Commitment)
	block, h := c.mine(t)
	mined := time.Now()
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	t.Logf("7. The cheater publishes the revoked commitment; mined in block %d", h)

	latency := c.waitInMempool(t, penalty, mined)
	if latency > penaltyDeadline {
		t.Fatalf("penalty took %v", latency)
	}
	if !loggedWith(tw.logs(), "breach found", loc) {
		t.Fatalf("teosd logged no breach for %s\n%s", loc, tw.logs())
	}
	t.Logf("8. The tower spots the locator, decrypts the penalty and broadcasts it:")
	t.Logf("     in btcd's mempool %d ms after the block", latency.Milliseconds())

	block, h = c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	waitFor(t, "teosd to see the penalty confirmed", func() bool {
		return loggedWith(tw.logs(), "penalty confirmed", penalty.String())
	})
	t.Logf("9. Penalty mined in block %d; teosd logs it confirmed. Alice keeps the channel's funds", h)

	var got map[string]any
	waitFor(t, "dispute_responded", func() bool {
		got = alice.run("get_appointment", loc)
		return got["status"] == "dispute_responded"
	})
	if tracker, _ := got["appointment"].(map[string]any); tracker["dispute_txid"] != commitment.String() ||
		tracker["penalty_txid"] != penalty.String() {
		t.Fatalf("get_appointment printed %v", got)
	}
	t.Logf("10. $ teos-client get_appointment %s  ->  dispute_responded", loc)

	tw.stop()
	node.Stop(t)
	t.Logf("11. Done in %v; teosd and btcd stopped", time.Since(start).Round(10*time.Millisecond))
}
