package pgstore_test

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// One damaged tracker row is skipped, and reported, rather than failing the whole listing
// (which the responder reads on every block).
func TestTrackersSkipUnreadableRow(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	var u teos.UserID
	u[0] = 2
	if _, err := s.UpdateUser(u, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionStart: 1, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var ids []teos.UUID
	for i := range 2 {
		a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{byte(i + 1)}, EncryptedBlob: []byte("blob"), ToSelfDelay: 42},
			UserID: u, UserSignature: "sig", StartBlock: 1}
		if _, err := s.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }); err != nil {
			t.Fatal(err)
		}
		tr := &store.Tracker{UUID: a.UUID(), DisputeTx: []byte("d"), PenaltyTx: []byte("p"),
			DisputeTxID: chainhash.Hash{1}, PenaltyTxID: chainhash.Hash{2}, Height: 5}
		if err := s.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.UUID())
	}
	if _, err := s.Pool().Exec(context.Background(), `UPDATE trackers SET penalty_txid = '\x00' WHERE uuid = $1`, ids[0][:]); err != nil {
		t.Fatal(err)
	}
	trs, err := s.Trackers()
	if err != nil || len(trs) != 1 || trs[0].UUID != ids[1] {
		t.Fatalf("Trackers = %v, %v; want only the readable one", trs, err)
	}
	trs, bad, err := s.TrackersChecked()
	if err != nil || len(trs) != 1 || len(bad) != 1 || bad[0].UUID != ids[0] || bad[0].Err == nil {
		t.Fatalf("TrackersChecked = %v, %v, %v", trs, bad, err)
	}
}

// The lnd front end's trackers too: one damaged row is skipped and reported.
func TestLndTrackersSkipUnreadableRow(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	var ids []teos.UUID
	for i := range 2 {
		tr := &store.Tracker{UUID: teos.UUID{byte(i + 1)}, DisputeTx: []byte("d"), PenaltyTx: []byte("p"),
			DisputeTxID: chainhash.Hash{1}, PenaltyTxID: chainhash.Hash{2}, Height: 5}
		if err := s.LndPutTracker(tr); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tr.UUID)
	}
	if _, err := s.Pool().Exec(context.Background(), `UPDATE lnd_trackers SET penalty_txid = '\x00' WHERE uuid = $1`, ids[0][:]); err != nil {
		t.Fatal(err)
	}
	trs, err := s.LndTrackers()
	if err != nil || len(trs) != 1 || trs[0].UUID != ids[1] {
		t.Fatalf("LndTrackers = %v, %v; want only the readable one", trs, err)
	}
	trs, bad, err := s.LndTrackersChecked()
	if err != nil || len(trs) != 1 || len(bad) != 1 || bad[0].UUID != ids[0] || bad[0].Err == nil {
		t.Fatalf("LndTrackersChecked = %v, %v, %v", trs, bad, err)
	}
}
