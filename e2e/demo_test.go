package e2e

import (
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
)

// TestDemo is `make demo`: one breach from start to finish on a private regtest chain, told
// step by step. Every step is also checked, so the demo cannot tell a story that did not happen.
func TestDemo(t *testing.T) {
	start := time.Now()
	node := startNode(t)
	c := newChain(t, node)
	t.Logf("1. btcd (regtest) running at %s, chain height %d", node.RPCHost, c.tip(t))

	tw := newTower(t, node, "")
	tw.start()
	t.Logf("2. teosd running, API %s, polling btcd every 100ms", tw.apiURL)
	t.Logf("   tower_id %s", tw.id)

	alice := newUser(t)
	reg := alice.register(t, tw) // checks the receipt's signature against the tower id
	t.Logf("3. Alice registered as %s", alice.id)
	t.Logf("   %d slots, subscription from block %d to %d; receipt signed by the tower: verified",
		reg.AvailableSlots, reg.SubscriptionStart, reg.SubscriptionExpiry)

	b := node.NewBreach(t)
	t.Logf("4. Alice's channel: an old, revoked commitment %s (%d bytes)", b.Commitment.TxHash(), b.Commitment.SerializeSize())
	t.Logf("   and the penalty that takes all its funds if it is ever published: %s (%d bytes)", b.Penalty.TxHash(), b.Penalty.SerializeSize())

	appt := breachAppointment(t, b)
	r := alice.add(t, tw, appt)
	t.Logf("5. Appointment sent: locator %s (half the commitment's txid), penalty encrypted under the full txid (%d bytes)",
		appt.Locator, len(appt.EncryptedBlob))
	t.Logf("   the tower watches from block %d; receipt signed by the tower: verified; %d slots left", r.StartBlock, r.AvailableSlots)
	if code, got := alice.get(t, tw, appt.Locator); code != 200 || got["status"] != "being_watched" {
		t.Fatalf("get_appointment: %d %v", code, got)
	}
	t.Log("   get_appointment: being_watched (the tower cannot read the penalty yet)")

	c.send(t, b.Commitment)
	block, h := c.mine(t)
	mined := time.Now()
	if !blockHas(block, b.Commitment) {
		t.Fatal("commitment not mined")
	}
	t.Logf("6. The cheater publishes the revoked commitment; it is mined in block %d", h)

	latency := c.waitInMempool(t, b.Penalty.TxHash(), mined)
	if latency > penaltyDeadline {
		t.Fatalf("penalty took %v", latency)
	}
	t.Logf("7. The tower spotted the locator, decrypted the penalty and broadcast it: in btcd's mempool %d ms after the block", latency.Milliseconds())

	block, h = c.mine(t)
	if !blockHas(block, b.Penalty) {
		t.Fatal("penalty not mined")
	}
	t.Logf("8. Penalty mined in block %d: the cheater's funds go to Alice", h)

	alice.waitResponded(t, tw, b)
	t.Logf("9. get_appointment: dispute_responded, dispute %s, penalty %s", b.Commitment.TxHash(), b.Penalty.TxHash())
	t.Logf("   the tower keeps the tracker until the penalty has %d confirmations, then refunds the slot", teos.IrrevocablyResolved)

	tw.stop()
	t.Logf("10. Done in %v: teosd stopped cleanly", time.Since(start).Round(10*time.Millisecond))
}
