package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestStoppedAdderStallsNoOne: an instance's process is stopped (SIGSTOP, a frozen container)
// while the server sends its add batch the previous versions of large appointments. Its
// kernel keeps acknowledging with a zero window, so the server's backend blocks in send,
// holding the adds' lock and the user's row: not idle in transaction, and never given up by
// TCP. The leader's publication of the next block waits for that lock, and every instance's
// adds behind it. tcp_user_timeout ends the stopped add's connection (lockHoldIdleTimeout in
// an add), so the block is published at its first try.
func TestStoppedAdderStallsNoOne(t *testing.T) {
	var proxy *commitCutter
	f := newVanishedFixture(t, withCommitCutter(&proxy))
	ctx := context.Background()
	leader, stopped := f.Leader, f.Gone
	user := teos.UserID{2, 1}
	users := map[teos.UserID]store.UserInfo{user: {AvailableSlots: 1 << 20, SubscriptionExpiry: 1000}}
	// More than the sockets' buffers hold between the server and a client that stopped reading.
	var appts []*store.Appointment
	var items []store.AppointmentUpsert
	for i := range 100 {
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{1, byte(i)},
			EncryptedBlob: make([]byte, 512<<10)}, UserID: user}
		appts = append(appts, a)
		items = append(items, store.AppointmentUpsert{Appointment: a,
			Policy:   func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil },
			HandOver: func() *store.HandOver { return nil }})
	}
	if err := leader.BulkLoad(users, appts); err != nil {
		t.Fatal(err)
	}
	proxy.stall.Store(true)
	f.Go(func() {
		_, _ = stopped.UpsertAppointments(items) // the same appointments again: their versions are read
	})
	<-proxy.stalled
	// The server blocks sending once the sockets' buffers are full; the bound only keeps a
	// failing test from hanging.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var writing bool
		if err := leader.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event = 'ClientWrite')`).Scan(&writing); err != nil {
			t.Fatal(err)
		}
		if writing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never blocked sending to the stopped client")
		}
	}
	start := time.Now()

	block := wire.NewMsgBlock(&wire.BlockHeader{})
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{})
	_ = block.AddTransaction(tx)
	mined := leader.MinedTxs(6)
	tries := 0
	for {
		tries++
		err := mined.BlockConnected(ctx, block, 101)
		if err == nil {
			break
		}
		if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "55P03" {
			t.Fatalf("publication: %v", err)
		}
		if tries == 3 {
			t.Fatalf("the publication gave up %d times on the stopped add, each time holding every instance's adds", tries)
		}
	}
	t.Logf("an add's process stopped while the server sent it its batch's appointments: block published %v later, at try %d",
		time.Since(start).Round(time.Millisecond), tries)
	if tries != 1 {
		t.Fatalf("the publication gave up %d times on the stopped add", tries-1)
	}
}

// Every session bounds its wait for a client to take what it sends to the session-wide
// idle bound (a mass expiry's ids sent to a stopped leader hold the users' rows); a
// tcp_user_timeout in database_url wins.
func TestSessionSendBound(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	db := direct[strings.LastIndexByte(direct, '/')+1 : strings.IndexByte(direct, '?')]
	for _, c := range []struct {
		url, want string
		sendBound bool // the transactions set it too
	}{
		{direct, "30000", true},
		{direct + "&tcp_user_timeout=5000", "5000", true},
		{direct + "&tcp_user_timeout=0", "0", true},
		// Not in force over a Unix socket: the transactions leave it alone (as on a server
		// without the socket option, where every SET would log a line).
		{srv.SocketURL(db), "0", false},
	} {
		s, err := Open(context.Background(), c.url, &Options{Network: "regtest"})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = s.pool.QueryRow(context.Background(), `SHOW tcp_user_timeout`).Scan(&got)
		sendBound := s.sendBound
		if err == nil {
			// A group commit over this connection still works.
			_, err = s.UpdateUser(teos.UserID{2, byte(len(c.url))}, func(store.UserInfo, bool) (store.UserInfo, error) {
				return store.UserInfo{AvailableSlots: 1, SubscriptionExpiry: 200}, nil
			})
		}
		s.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got != c.want || sendBound != c.sendBound {
			t.Errorf("%s: tcp_user_timeout = %s, in the transactions %v; want %s, %v", c.url, got, sendBound, c.want, c.sendBound)
		}
	}
}
