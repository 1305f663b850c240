package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkUpsertAppointmentParallel measures add_appointment's store cost with fsync on:
// concurrent callers share commits through the store's group commit (commit.go).
func BenchmarkUpsertAppointmentParallel(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), nil)
	b.Cleanup(func() { _ = s.Close() })
	const users = 1024
	registerAll(b, s, users, ^uint32(0), ^uint32(0))
	var nextUser, nextLocator atomic.Int64
	blob := bytes.Repeat([]byte{0xb1}, 900) // about the largest blob the HTTP limit lets through
	// An HTTP server has many requests in flight, not one per CPU.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := testUser(int(nextUser.Add(1)) % users)
		for pb.Next() {
			a := &Appointment{
				Appointment:   teos.Appointment{Locator: testLocator(int(nextLocator.Add(1))), EncryptedBlob: blob, ToSelfDelay: 42},
				UserID:        user,
				UserSignature: "rbn4pe7gu5s6ct8fmd5w6mj8q9yb8ch3dtuxo5ee7eqs5umkqr93hk9ga76pwnzodh3sqk4n8uqz6cxs6jrj4egq8jg6o",
			}
			if _, err := s.UpsertAppointment(a, charge(a)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppointmentsByLocators measures the watcher's per-block lookup: 4,000 locators (a
// full block's transactions, 1% of them breaches) against 100,000 stored appointments.
func BenchmarkAppointmentsByLocators(b *testing.B) {
	const stored, perBlock, hits = 100_000, 4_000, 40
	s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), &Options{NoSync: true})
	b.Cleanup(func() { _ = s.Close() })
	fillAppointments(b, s, stored, 500)

	rng := rand.New(rand.NewPCG(7, 8))
	query := make([]teos.Locator, 0, perBlock)
	for range hits {
		query = append(query, testLocator(rng.IntN(stored)))
	}
	for len(query) < perBlock {
		query = append(query, testLocator(stored+rng.IntN(1<<30)))
	}
	b.Run(fmt.Sprintf("%d_of_%d", perBlock, stored), func(b *testing.B) {
		for b.Loop() {
			got, err := s.AppointmentsByLocators(query)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) == 0 || len(got) > hits {
				b.Fatalf("%d locators matched, want 1..%d", len(got), hits)
			}
		}
	})
}

// fillAppointments stores n appointments (100 users, locators testLocator(0..n-1)) through the
// same bucket writes UpsertAppointment makes, in big transactions, for fixtures only.
func fillAppointments(b *testing.B, s *Store, n, blobLen int) {
	b.Helper()
	const users, perTx = 100, 20_000
	blob := bytes.Repeat([]byte{0xf1}, blobLen)
	for first := 0; first < n; first += perTx {
		err := s.db.Update(func(tx *bolt.Tx) error {
			bk, err := openBuckets(tx)
			if err != nil {
				return err
			}
			if first == 0 {
				for u := range users {
					info := UserInfo{AvailableSlots: ^uint32(0), SubscriptionExpiry: ^uint32(0)}
					if err := putUser(bk, testUser(u), UserInfo{}, false, info); err != nil {
						return err
					}
				}
			}
			for i := first; i < min(first+perTx, n); i++ {
				a := &Appointment{Appointment: teos.Appointment{Locator: testLocator(i), EncryptedBlob: blob}, UserID: testUser(i % users)}
				id := a.UUID()
				if err := putAppointmentRecord(bk, id, encodeAppointment(a)); err != nil {
					return err
				}
				for _, w := range []struct {
					bkt      *bolt.Bucket
					key, val []byte
				}{
					{bk.locatorIdx, locatorKey(a.Locator, id), []byte{}},
					{bk.userAppts, userApptKey(a.UserID, id), []byte{}},
				} {
					if err := w.bkt.Put(w.key, w.val); err != nil {
						return err
					}
				}
			}
			return bk.flushCounts()
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
