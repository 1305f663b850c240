package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// TestLostLeaderTransactionEnds: the leader's machine is lost (or its process stopped) in the
// middle of a fenced write, whose transaction holds the term's row (checkLeader's FOR SHARE).
// The server must end that transaction, so that the next leader can start its term, rather
// than keep it until TCP keepalive gives up, hours later (each NewTerm would time out).
func TestLostLeaderTransactionEnds(t *testing.T) {
	defer pgstore.SetIdleInTransactionTimeout(time.Second)()
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	proxied, proxy := pgtest.BehindSilentProxy(t, direct)
	old := open(t, proxied, "regtest")
	defer old.Close()

	ctx := context.Background()
	tx, err := old.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT term FROM leader_term WHERE id = 1 FOR SHARE`); err != nil {
		t.Fatal(err)
	}
	proxy.Silence()
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

// TestLostFollowerAddEnds: a follower's machine is lost (or its process stopped) in the middle
// of an add, whose transaction holds its user's row. The leader's block commit for that user's
// other appointment, which locks the same row, must go through once the server ends the lost
// transaction, rather than fail at every try until TCP keepalive gives up, hours later.
func TestLostFollowerAddEnds(t *testing.T) {
	defer pgstore.SetIdleInTransactionTimeout(time.Second)()
	f, proxy := vanishedFixture(t)
	leader, follower := f.Leader, f.Gone

	var user teos.UserID
	user[0] = 6
	if _, err := leader.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	appt := func(b byte) *store.Appointment {
		return &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{b}, EncryptedBlob: []byte{b}},
			UserID: user, UserSignature: "sig"}
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	triggered := appt(1)
	if _, err := leader.UpsertAppointment(triggered, free); err != nil {
		t.Fatal(err)
	}

	inPolicy := make(chan struct{})
	f.Go(func() {
		_, _ = follower.UpsertAppointment(appt(2), func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
			close(inPolicy) // the user's row is locked
			<-f.Release
			return u, nil
		})
	})
	<-inPolicy
	proxy.Silence()

	id := triggered.UUID()
	err := leader.ApplyChanges(&store.Changes{
		Trackers: []*store.Tracker{{UUID: id, DisputeTx: []byte("d"), PenaltyTx: []byte("p"),
			DisputeTxID: chainhash.Hash{1}, PenaltyTxID: chainhash.Hash{2}, Height: 101}},
		Basis: map[teos.UUID]store.Basis{id: {UserSignature: "sig"}},
	})
	if err != nil {
		t.Fatalf("the lost follower's open add blocks the leader's block commit: %v", err)
	}
	if _, err := leader.Tracker(id); err != nil {
		t.Fatal(err)
	}
}
