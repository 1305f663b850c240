package pgstore_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// BenchmarkAddSerial: one add at a time, each its own group commit, so every statement a
// commit adds shows in full (fsync off: the round trips, not the disk).
func BenchmarkAddSerial(b *testing.B) {
	srv := pgtest.Start(b, &pgtest.Options{NoFsync: true})
	s, err := pgstore.Open(context.Background(), srv.NewDatabase(b), &pgstore.Options{Network: "regtest"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var user teos.UserID
	user[0] = 2
	if _, err := s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 1 << 30, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		var loc teos.Locator
		binary.BigEndian.PutUint64(loc[:], uint64(i))
		a := &store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: make([]byte, 300)}, UserID: user}
		res, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: free,
			HandOver: func() *store.HandOver { return nil }}})
		if err != nil || res[0].Err != nil {
			b.Fatal(err, res)
		}
	}
}
