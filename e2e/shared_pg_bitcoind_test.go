package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresLeaderBitcoindDown: the leader's own bitcoind stops answering while the
// follower's still does. The leader must give the leadership up, and the follower take it and
// answer a breach mined meanwhile, rather than block processing stopping for every instance
// until the leader's bitcoind comes back. Back, the former leader follows.
func TestSharedPostgresLeaderBitcoindDown(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	link := startProxy(t, node.RPCHost) // a's bitcoind connection, which the test cuts
	a.args = append(a.args, "--btcrpcport", link.port())
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)

	alice := newUser(t)
	alice.register(t, b)
	breach := node.NewBreach(t)
	alice.add(t, b, breachAppointment(t, breach))

	link.down()
	cut := time.Now()
	waitLog(t, a, "leadership given up", 1)
	took := waitLog(t, b, "leadership acquired", 1).Sub(cut)
	c.send(t, breach.Commitment)
	c.mine(t)
	mined := time.Now()
	t.Logf("leader's bitcoind down: the follower led %v after the cut; penalty in the mempool %v after the breach's block",
		took.Round(time.Millisecond), c.waitInMempool(t, breach.Penalty.TxHash(), mined).Round(time.Millisecond))
	alice.wantResponded(t, b, breach)

	link.up(t)
	waitLog(t, a, "campaigning for the leadership again", 1)
	wantRoles(t, b, a)
	b.stop()
	a.stop()
}
