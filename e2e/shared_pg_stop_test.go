package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresStoppedLeader: the leader's process is stopped (SIGSTOP: a frozen VM, a
// lost machine look the same to PostgreSQL, a session open and silent). The follower must take
// the leadership over and answer a breach mined meanwhile, rather than wait for TCP keepalive
// to end the silent session, hours later. Continued, the former leader steps down and follows.
func TestSharedPostgresStoppedLeader(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	toml := fmt.Sprintf("database_url = %q\n", url)
	a, b := newTower(t, node, toml), newTower(t, node, toml)
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 1)

	alice := newUser(t)
	alice.register(t, b)
	breach := node.NewBreach(t)
	alice.add(t, b, breachAppointment(t, breach))

	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = a.cmd.Process.Signal(syscall.SIGCONT) // let the harness stop it
		}
	}()
	c.send(t, breach.Commitment)
	c.mine(t)
	mined := time.Now()
	took := waitLog(t, b, "leadership acquired", 1).Sub(mined)
	t.Logf("stopped leader: the follower led %v after the breach's block; penalty in the mempool %v after it",
		took.Round(time.Millisecond), c.waitInMempool(t, breach.Penalty.TxHash(), mined).Round(time.Millisecond))
	alice.wantResponded(t, b, breach)

	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	waitLog(t, a, "following: another instance leads", 1)
	wantRoles(t, b, a)
	if n := strings.Count(b.logs(), "leadership acquired"); n != 1 {
		t.Fatalf("the new leader lost the leadership to the continued one (%d terms):\n%s", n, b.logs())
	}
	b.stop()
	a.stop()
}
