package pgstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestVanishedLeaderUserWritesStallNoOne: the leader vanishes with the COMMIT of a write that
// holds users' rows lost on the way (its expired users' deletion, a block's changes whose
// basis locked the owners): another instance's add for such a user waits for the row, holding
// the adds' lock (so the next publication, and every add behind it, waits too). The server
// ends the leader's transaction after lockHoldIdleTimeout, as an add's, not the session-wide
// idle timeout (made longer here than the add's own bound, so that waiting for it fails).
func TestVanishedLeaderUserWritesStallNoOne(t *testing.T) {
	defer func(old time.Duration) { idleInTxTimeout = old }(idleInTxTimeout)
	idleInTxTimeout = 10 * time.Minute
	defer SetOpTimeout(10 * time.Second)()
	appt := func(user teos.UserID, b byte) *store.Appointment {
		return &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{b}, EncryptedBlob: []byte{b}},
			UserID: user, UserSignature: "sig"}
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	for _, c := range []struct {
		name  string
		write func(leader *Store, user teos.UserID) error
	}{
		{"outdated users", func(leader *Store, _ teos.UserID) error {
			_, err := leader.DeleteOutdatedUsers(2000, 0)
			return err
		}},
		{"stale basis", func(leader *Store, user teos.UserID) error {
			id := appt(user, 1).UUID()
			return leader.ApplyChanges(&store.Changes{
				Trackers: []*store.Tracker{{UUID: id, DisputeTx: []byte("d"), PenaltyTx: []byte("p"),
					DisputeTxID: chainhash.Hash{1}, PenaltyTxID: chainhash.Hash{2}, Height: 101}},
				Basis: map[teos.UUID]store.Basis{id: {UserSignature: "sig"}},
			})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var proxy *commitCutter
			f := newVanishedFixture(t, withCommitCutter(&proxy))
			other, leader := f.Other, f.Gone
			user := teos.UserID{2, 1}
			if _, err := other.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
				return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := other.UpsertAppointment(appt(user, 1), free); err != nil {
				t.Fatal(err)
			}
			proxy.drop.Store(true)
			if err := c.write(leader, user); err == nil {
				t.Fatal("a write whose COMMIT was lost reported done")
			}
			if proxy.drop.Load() {
				t.Fatal("the write sent no COMMIT through the proxy")
			}

			start := time.Now()
			res, err := other.UpsertAppointments([]store.AppointmentUpsert{{Appointment: appt(user, 2), Policy: free}})
			if err == nil {
				err = res[0].Err
			}
			t.Logf("an add for a user whose row the vanished leader held took %v", time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Fatal(fmt.Errorf("add while a vanished leader's write holds its user's row: %w", err))
			}
		})
	}
}
