package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestVanishedPublisherStallsNoOne: the leader vanishes right after its block publication took
// the adds' lock exclusively, its COMMIT lost on the way: every instance's adds wait for that
// lock. The server ends the publication's transaction after lockHoldIdleTimeout rather than
// the session-wide idle timeout, made longer here than an add's own bound (so that waiting
// for it would fail the add).
func TestVanishedPublisherStallsNoOne(t *testing.T) {
	defer func(old time.Duration) { idleInTxTimeout = old }(idleInTxTimeout)
	idleInTxTimeout = 10 * time.Minute
	var proxy *commitCutter
	f := newVanishedFixture(t, withCommitCutter(&proxy))
	ctx := context.Background()
	other, leader := f.Other, f.Gone
	user := teos.UserID{2, 1}
	if _, err := other.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	block := wire.NewMsgBlock(&wire.BlockHeader{})
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(&wire.TxIn{})
	_ = block.AddTransaction(tx)
	proxy.drop.Store(true)
	if err := leader.MinedTxs(6).BlockConnected(ctx, block, 101); err == nil {
		t.Fatal("a publication whose COMMIT was lost reported done")
	}
	if proxy.drop.Load() {
		t.Fatal("the publication sent no COMMIT through the proxy")
	}

	start := time.Now()
	a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{1}, EncryptedBlob: []byte{1}}, UserID: user}
	res, err := other.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a,
		Policy: func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }}})
	if err == nil {
		err = res[0].Err
	}
	t.Logf("an add after the publisher vanished holding the adds' lock took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("add while a vanished publication holds the adds' lock: %v", err)
	}
}
