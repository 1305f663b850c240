package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// TestListenHandOvers: a hand-over queued on one instance (an add whose dispute is mined, or
// QueueMissed) wakes the listener of another at its commit; a listener whose connection is
// killed listens again, waking once for what it may have missed, and keeps being woken.
func TestListenHandOvers(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	// The leader's sessions are named so that the test can find its listening one: the
	// listener's last query, which pg_stat_activity shows, is LISTEN only until its first check
	// of a quiet connection.
	leader, follower := open(t, url+"&application_name=teos-listening", "regtest"), open(t, url, "regtest")
	defer leader.Close()
	defer follower.Close()

	woken := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		leader.ListenHandOvers(ctx, 100*time.Millisecond, func() { woken <- struct{}{} }, nil)
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(30 * time.Second):
			t.Fatalf("not woken: %s", what)
		}
	}
	wait("listening")

	var user teos.UserID
	user[0] = 3
	if _, err := follower.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	add := func(b byte, h *store.HandOver) {
		t.Helper()
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{b}, EncryptedBlob: []byte{1}}, UserID: user}
		res, err := follower.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: free,
			HandOver: func() *store.HandOver { return h }}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("upsert: %v %v", err, res)
		}
	}
	block := chainhash.Hash{7}
	add(1, nil)
	add(2, &store.HandOver{Block: block, Dispute: []byte("d2")})
	wait("an add queued a hand-over")
	if n, err := follower.QueueMissed(block, map[teos.Locator][]byte{{1}: []byte("d1")}); err != nil || n != 1 {
		t.Fatalf("QueueMissed = %d, %v", n, err)
	}
	wait("QueueMissed queued a hand-over")
	if q, err := leader.QueuedHandOvers(); err != nil || len(q) != 2 {
		t.Fatalf("queue = %d entries, %v", len(q), err)
	}

	// Kill the leader's sessions, the listening one among them: the listener comes back on its
	// own (nothing else wakes it here, so the next wait shows that the listener was killed).
	tag, err := follower.Pool().Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'teos-listening'`)
	if err != nil || tag.RowsAffected() == 0 {
		t.Fatalf("terminate the listener: %v, %d sessions", err, tag.RowsAffected())
	}
	wait("listening again")
	add(3, &store.HandOver{Block: block, Dispute: []byte("d3")})
	wait("an add queued a hand-over after the connection was lost")
}

// TestListenNoticesSilentDrop: the LISTEN connection silently stops carrying anything (no
// reset, no close: TCP keepalive would see a healthy peer). The listener's check of its quiet
// connection notices, it listens again on a new one, and is woken by the next hand-over.
func TestListenNoticesSilentDrop(t *testing.T) {
	defer pgstore.SetListenCheckTimeout(time.Second)()
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	proxied, proxy := pgtest.BehindSilentProxy(t, direct)
	leader, follower := open(t, proxied, "regtest"), open(t, direct, "regtest")
	defer leader.Close()
	defer follower.Close()

	woken := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		leader.ListenHandOvers(ctx, 100*time.Millisecond, func() { woken <- struct{}{} }, nil)
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-woken:
		case <-time.After(30 * time.Second):
			t.Fatalf("not woken: %s", what)
		}
	}
	wait("listening")
	var user teos.UserID
	user[0] = 4
	if _, err := follower.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	add := func(b byte) {
		t.Helper()
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{b}, EncryptedBlob: []byte{1}}, UserID: user}
		res, err := follower.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: free,
			HandOver: func() *store.HandOver { return &store.HandOver{Block: chainhash.Hash{7}, Dispute: []byte{b}} }}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("upsert: %v %v", err, res)
		}
	}
	add(1)
	wait("a hand-over queued while the connection carries")
	proxy.Silence()
	wait("listening again on a new connection")
	add(2)
	wait("a hand-over queued after the silent drop")
}
