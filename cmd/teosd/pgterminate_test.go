package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// A PostgreSQL failover (or a DBA) ends every session of teosd's pool: the next request on
// each endpoint finds its connection dead. It is held as a fault of the tower's own and served
// on a fresh connection, never answered with an error (README: "PostgreSQL itself").
func TestSharedSessionsEndedRequestsServed(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	db, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	user, _ := btcec.NewPrivateKey()
	tower, _ := btcec.NewPrivateKey()
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 100, SubscriptionDuration: 1000, ExpiryDelta: 6}, 200)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: &swapResponder{}, TowerKey: tower})
	public := grpcapi.NewPublic(w, func() bool { return true }, nil)
	var held atomic.Int32 // requests the ended sessions made wait, then served
	gate := hold.New(hold.Config{Bound: time.Minute, OnRelease: func(_ string, _ time.Duration, outcome string) {
		if outcome == hold.OutcomeServed {
			held.Add(1)
		}
	}})
	public.SetHold(grpcapi.Hold{Gate: gate,
		Bitcoind: hold.NewCondition("bitcoind", 0), Store: hold.NewCondition("store", storeRetry)})

	// endSessions ends every other session on the database, as a failover does.
	endSessions := func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("no session of teosd's pool to end: the fault did not bite")
		}
	}
	ctx := t.Context()
	uid := teos.UserIDFromPubKey(user.PubKey())
	a := teos.Appointment{Locator: teos.Locator{1}, EncryptedBlob: []byte{1, 2, 3}, ToSelfDelay: 42}
	sig := func(msg []byte) string { return wtcrypto.SignMessage(msg, user) }
	calls := []struct {
		name string
		call func() error
	}{
		{"register", func() error {
			_, err := public.Register(ctx, &commonv2.RegisterRequest{UserId: uid[:]})
			return err
		}},
		{"add_appointment", func() error {
			_, err := public.AddAppointment(ctx, &commonv2.AddAppointmentRequest{Signature: sig(a.SignedBytes()),
				Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: a.ToSelfDelay}})
			return err
		}},
		{"get_appointment", func() error {
			_, err := public.GetAppointment(ctx, &commonv2.GetAppointmentRequest{Locator: a.Locator[:],
				Signature: sig(teos.GetAppointmentMessage(a.Locator))})
			return err
		}},
		{"get_subscription_info", func() error {
			_, err := public.GetSubscriptionInfo(ctx, &commonv2.GetSubscriptionInfoRequest{Signature: sig(teos.GetSubscriptionInfoMessage)})
			return err
		}},
	}
	for _, c := range calls {
		endSessions()
		if err := c.call(); err != nil {
			t.Errorf("%s on the first request after the sessions ended: %v", c.name, err)
		}
	}
	if held.Load() == 0 {
		t.Fatal("no request met a dead connection: the fault did not bite")
	}
	t.Logf("%d of %d requests met a dead connection, were held and served", held.Load(), len(calls))
}
