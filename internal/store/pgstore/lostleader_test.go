package pgstore_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// TestLostLeaderTransactionEnds: the leader's machine is lost (or its process stopped) in the
// middle of a fenced write, whose transaction holds the term's row (checkLeader's FOR SHARE).
// The server must end that transaction, so that the next leader can start its term, rather
// than keep it until TCP keepalive gives up, hours later (each NewTerm would time out).
func TestLostLeaderTransactionEnds(t *testing.T) {
	defer pgstore.SetIdleInTransactionTimeout(time.Second)()
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startBlackhole(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	old := open(t, u.String(), "regtest")
	defer old.Close()

	ctx := context.Background()
	tx, err := old.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT term FROM leader_term WHERE id = 1 FOR SHARE`); err != nil {
		t.Fatal(err)
	}
	proxy.drop()
	defer func() {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()

	conn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := pgstore.NewTerm(tctx, conn); err != nil {
		t.Fatalf("the lost leader's open transaction blocks the next term: %v", err)
	}
}
