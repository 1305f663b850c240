package e2e

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// rpcCounter is a proxy to bitcoind's RPC that counts the calls of one method.
type rpcCounter struct {
	*rpcProxy
	calls atomic.Int64
}

func countRPC(t *testing.T, target, method string) *rpcCounter {
	t.Helper()
	c := &rpcCounter{}
	c.rpcProxy = startRPCProxy(t, target, func(_ http.ResponseWriter, _ *http.Request, call *rpcCall) bool {
		if call.Method == method {
			c.calls.Add(1)
		}
		return false
	})
	return c
}

// TestSharedPostgresLaggingFollowerKilledAfterLateAdd: the leader has processed the block
// mining a dispute; the follower (polling once an hour) has not seen it yet and acknowledges
// the appointment for that dispute, then is killed (SIGKILL) right after the answer. Nobody
// else will look that block up again, so the hand-over must have been made durable with the
// acknowledgement: the leader broadcasts the penalty.
func TestSharedPostgresLaggingFollowerKilledAfterLateAdd(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	dbURL := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", dbURL)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start("--pollinginterval", "100ms")
	waitLog(t, a, "leadership acquired", 1)
	late := node.NewBreach(t)
	_, h := c.mine(t)
	waitTowerAt(t, a, h) // the persisted tip the follower starts from
	// The follower asks bitcoind for its best block once to campaign and once for its first
	// poll, then not for an hour: once both are done it cannot see a new block.
	rpc := countRPC(t, node.RPCHost, "getbestblockhash")
	b.args = append(b.args, "--btcrpcport", rpc.port())
	b.start("--pollinginterval", "1h")
	waitLog(t, b, "following: another instance leads", 1)
	waitFor(t, "the follower's first poll", func() bool { return rpc.calls.Load() >= 2 })

	alice := newUser(t)
	alice.register(t, b)
	c.send(t, late.Commitment)
	block, tip := c.mine(t)
	if !blockHas(block, late.Commitment) {
		t.Fatal("commitment not mined")
	}
	waitTowerAt(t, a, tip)
	if r := alice.add(t, b, breachAppointment(t, late)); r.StartBlock != h {
		t.Fatalf("start_block %d, want %d (the follower must not have seen the dispute's block)", r.StartBlock, h)
	}
	b.kill()
	killed := time.Now()
	t.Logf("penalty in the mempool %v after the follower was killed",
		c.waitInMempool(t, late.Penalty.TxHash(), killed).Round(time.Millisecond))
	alice.waitResponded(t, a, late)
	a.stop()
}
