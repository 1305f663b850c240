package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresLaggingFollowerKilledAfterLateAdd: the leader has processed the block
// mining a dispute; the follower (polling once an hour) has not seen it yet and acknowledges
// the appointment for that dispute, then is killed (SIGKILL) right after the answer. Nobody
// else will look that block up again, so the hand-over must have been made durable with the
// acknowledgement: the leader broadcasts the penalty.
func TestSharedPostgresLaggingFollowerKilledAfterLateAdd(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start("--pollinginterval", "100ms")
	waitLog(t, a, "leadership acquired", 1)
	b.start("--pollinginterval", "1h")
	waitLog(t, b, "following: another instance leads", 1)

	alice := newUser(t)
	alice.register(t, b)
	before := c.tip(t)
	late := node.NewBreach(t)
	c.send(t, late.Commitment)
	block, tip := c.mine(t)
	if !blockHas(block, late.Commitment) {
		t.Fatal("commitment not mined")
	}
	waitTowerAt(t, a, tip)
	if h := towerHeight(t, b); h != before {
		t.Fatalf("the follower is at %d, want %d (it must not have seen the dispute's block)", h, before)
	}
	if r := alice.add(t, b, breachAppointment(t, late)); r.StartBlock != before {
		t.Fatalf("start_block %d, want %d", r.StartBlock, before)
	}
	b.kill()
	killed := time.Now()
	t.Logf("penalty in the mempool %v after the follower was killed",
		c.waitInMempool(t, late.Penalty.TxHash(), killed).Round(time.Millisecond))
	alice.waitResponded(t, a, late)
	a.stop()
}
