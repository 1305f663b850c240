package e2e

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"
)

// demoStory names a file (scripts/demo.sh, `make demo`, passes its terminal) that gets TestDemo's
// story and nothing else; without it the story goes to the test log.
var demoStory = flag.String("demo.story", "", "write TestDemo's story to this file")

// tell is one line of the demo's story.
func tell(t *testing.T, format string, args ...any) {
	t.Helper()
	if *demoStory == "" {
		t.Logf(format, args...)
		return
	}
	f, err := os.OpenFile(*demoStory, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("demo story: %v", err)
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", args...)
}

// TestDemo is `make demo`: one breach from start to finish on a private regtest chain, told
// step by step, with Alice using the teos-client binary as a user would. Every step is also
// checked, so the demo cannot tell a story that did not happen. btcd and teosd are stopped at
// the end, and die with the test process if it is interrupted (btcdtest.DieWithParent).
func TestDemo(t *testing.T) {
	start := time.Now()
	node := startNode(t)
	c := newChain(t, node)
	tell(t, "1. btcd (regtest) up at %s, chain height %d", node.RPCHost, c.tip(t))

	tw := newTower(t, node, "")
	tw.start()
	tell(t, "2. teosd up, API %s, tower id:", tw.apiURL)
	tell(t, "     %s", tw.id)

	alice := newClientCLI(t, tw)
	reg := alice.run("--towerid", tw.id.String(), "register")
	if reg["tower_id"] != tw.id.String() {
		t.Fatalf("register printed %v", reg)
	}
	tell(t, "3. $ teos-client register    (receipt checked against the tower id)")
	tell(t, "     Alice %s: %v slots, blocks %v to %v", reg["user_id"], reg["available_slots"],
		reg["subscription_start"], reg["subscription_expiry"])

	b := node.NewBreach(t)
	commitment, penalty := b.Commitment.TxHash(), b.Penalty.TxHash()
	tell(t, "4. Alice's channel has an old, revoked commitment and the penalty that sweeps it:")
	tell(t, "     commitment %s", commitment)
	tell(t, "     penalty    %s", penalty)

	loc := locatorOf(b).String()
	rec := alice.run("add_appointment", "--commitment-txid", commitment.String(),
		"--penalty", hex.EncodeToString(txBytes(t, b.Penalty)), "--to-self-delay", "144")
	if rec["locator"] != loc {
		t.Fatalf("add_appointment printed %v", rec)
	}
	tell(t, "5. $ teos-client add_appointment --commitment-txid ... --penalty ...")
	tell(t, "     locator %s (half the commitment txid), watched from block %v", loc, rec["start_block"])
	tell(t, "     the penalty travels encrypted under the full txid: the tower cannot read it yet")
	if got := alice.run("get_appointment", loc); got["status"] != "being_watched" {
		t.Fatalf("get_appointment printed %v", got)
	}
	tell(t, "6. $ teos-client get_appointment %s  ->  being_watched", loc)

	c.send(t, b.Commitment)
	block, h := c.mine(t)
	mined := time.Now()
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	tell(t, "7. The cheater publishes the revoked commitment; mined in block %d", h)

	latency := c.waitInMempool(t, penalty, mined)
	if latency > penaltyDeadline {
		t.Fatalf("penalty took %v", latency)
	}
	if !loggedWith(tw.logs(), "breach found", loc) {
		t.Fatalf("teosd logged no breach for %s\n%s", loc, tw.logs())
	}
	tell(t, "8. The tower spots the locator, decrypts the penalty and broadcasts it:")
	tell(t, "     in btcd's mempool %d ms after the block", latency.Milliseconds())

	block, h = c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	waitFor(t, "teosd to see the penalty confirmed", func() bool {
		return loggedWith(tw.logs(), "penalty confirmed", penalty.String())
	})
	tell(t, "9. Penalty mined in block %d; teosd logs it confirmed. Alice keeps the channel's funds", h)

	var got map[string]any
	waitFor(t, "dispute_responded", func() bool {
		got = alice.run("get_appointment", loc)
		return got["status"] == "dispute_responded"
	})
	if tracker, _ := got["appointment"].(map[string]any); tracker["dispute_txid"] != commitment.String() ||
		tracker["penalty_txid"] != penalty.String() {
		t.Fatalf("get_appointment printed %v", got)
	}
	tell(t, "10. $ teos-client get_appointment %s  ->  dispute_responded", loc)

	tw.stop()
	node.Stop(t)
	tell(t, "11. Done in %v; teosd and btcd stopped", time.Since(start).Round(10*time.Millisecond))
}
