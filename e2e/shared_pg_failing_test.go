package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
)

// TestSharedPostgresLeaderBlocksKeepFailing: the leader's block processing keeps failing for a
// reason of its own (its database role may not insert trackers, so the block holding a breach
// fails at every try) while its bitcoind and database answer. It must give the leadership up,
// and the follower, whose writes work, process the block and record the breach, rather than
// block processing stop for every instance.
func TestSharedPostgresLeaderBlocksKeepFailing(t *testing.T) {
	pg := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := pg.NewDatabase(t)
	node := startNode(t)
	c := newChain(t, node)
	b := newTower(t, node, fmt.Sprintf("database_url = %q\n", url))
	b.start() // creates the schema
	waitLog(t, b, "leadership acquired", 1)
	b.stop()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE ROLE teos_a LOGIN;
		GRANT CREATE, USAGE ON SCHEMA public TO teos_a;
		GRANT ALL ON ALL TABLES IN SCHEMA public TO teos_a;
		GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO teos_a;
		REVOKE INSERT ON trackers FROM teos_a`); err != nil {
		t.Fatal(err)
	}
	urlA := strings.Replace(url, "postgres://teos@", "postgres://teos_a@", 1)
	a := newTower(t, node, fmt.Sprintf("database_url = %q\n", urlA))
	a.start()
	waitLog(t, a, "leadership acquired", 1)
	b.start()
	waitLog(t, b, "following: another instance leads", 2)

	alice := newUser(t)
	alice.register(t, b)
	breach := node.NewBreach(t)
	alice.add(t, b, breachAppointment(t, breach))
	c.send(t, breach.Commitment)
	_, tip := c.mine(t)
	waitLog(t, a, "permission denied for table trackers", 1)
	waitLog(t, a, "leadership given up", 1)
	waitLog(t, b, "leadership acquired", 2)
	alice.waitResponded(t, b, breach)
	waitTowerAt(t, b, tip)
	wantRoles(t, b, a)
	b.stop()
	a.stop()
}
