package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresLateAppointmentNotifiesLeader: both instances poll bitcoind (and the
// election) once an hour. A late appointment accepted by the follower (its dispute already
// mined and processed by the leader) can then reach the mempool within the test only because
// the follower's queueing transaction notifies the leader, which drains its hand-over queue at
// once.
func TestSharedPostgresLateAppointmentNotifiesLeader(t *testing.T) {
	pg := pgtest.Start(t, nil)
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	late := node.NewBreach(t)
	c.send(t, late.Commitment)
	block, tip := c.mine(t)
	if !blockHas(block, late.Commitment) {
		t.Fatal("commitment not mined")
	}
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start("--pollinginterval", "1h")
	waitLog(t, a, "leading: following the chain", 1)
	b.start("--pollinginterval", "1h")
	waitLog(t, b, "following: another instance leads", 1)
	wantRoles(t, a, b)

	alice := newUser(t)
	alice.register(t, b)
	added := time.Now()
	if r := alice.add(t, b, breachAppointment(t, late)); r.StartBlock != tip {
		t.Fatalf("start_block %d, want %d", r.StartBlock, tip)
	}
	latency := c.waitInMempool(t, late.Penalty.TxHash(), added)
	t.Logf("late appointment through the follower: penalty in the mempool %v after the add (polling interval 1h)",
		latency.Round(time.Millisecond))
	alice.waitResponded(t, b, late)
	b.stop()
	a.stop()
}
