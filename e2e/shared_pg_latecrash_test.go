package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresLateAppointmentFollowerDies: a follower polls bitcoind less often than the
// leader, so it acknowledges late appointments (their disputes mined in blocks the leader has
// already looked up) before it knows those blocks, and dies right after, for good. The leader
// must still answer both breaches, one whose block it processed just before the add and one a
// block earlier, each without another block: each add's own transaction found its dispute among
// the transactions the leader published (recent_txs) and queued the hand-over.
func TestSharedPostgresLateAppointmentFollowerDies(t *testing.T) {
	pg := pgtest.Start(t, nil)
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start("--pollinginterval", "10m") // the follower sees no block during the test
	waitLog(t, b, "following: another instance leads", 1)

	alice := newUser(t)
	alice.register(t, a)
	early, late := node.NewBreach(t), node.NewBreach(t)
	c.send(t, early.Commitment)
	_, h := c.mine(t)
	c.mine(t)
	waitTowerAt(t, a, h+1)
	alice.add(t, b, breachAppointment(t, early))
	// Waited for before the next block, which would otherwise mine the penalty out of the
	// mempool (or, sent after it, prove nothing about "without another block").
	c.waitInMempool(t, early.Penalty.TxHash(), time.Now())
	c.send(t, late.Commitment)
	c.mine(t)
	waitTowerAt(t, a, h+2)
	if _, _, ok := c.confirmation(t, early.Penalty.TxHash()); !ok {
		t.Fatalf("the early penalty was not mined in block %d", h+2)
	}
	alice.add(t, b, breachAppointment(t, late))
	b.kill()
	c.waitInMempool(t, late.Penalty.TxHash(), time.Now())
	a.stop()
}
