package store

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// BenchmarkUserLocators measures get_subscription_info's store cost, per appointment of the
// user: one user holding every appointment (as in e2e TestSubscriptionInfoPastFourMiB), and one
// user among 100 sharing the tower (their appointments spread over the appointments bucket).
func BenchmarkUserLocators(b *testing.B) {
	const n, blobLen = 260_000, 500
	b.Run(fmt.Sprintf("alone_%d", n), func(b *testing.B) {
		s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), &Options{NoSync: true})
		b.Cleanup(func() { _ = s.Close() })
		user := testUser(0)
		blob := bytes.Repeat([]byte{0xf1}, blobLen)
		appts := make([]*Appointment, 0, 20_000)
		users := map[teos.UserID]UserInfo{user: {AvailableSlots: 1, SubscriptionExpiry: ^uint32(0)}}
		for i := range n {
			appts = append(appts, &Appointment{Appointment: teos.Appointment{Locator: testLocator(i), EncryptedBlob: blob}, UserID: user, UserSignature: "d"})
			if len(appts) == cap(appts) || i == n-1 {
				if err := s.BulkLoad(users, appts); err != nil {
					b.Fatal(err)
				}
				appts, users = appts[:0], nil
			}
		}
		benchUserLocators(b, s, user, n)
	})
	b.Run(fmt.Sprintf("one_of_100_%d", n/100), func(b *testing.B) {
		s := mustOpen(b, filepath.Join(b.TempDir(), "teos.db"), &Options{NoSync: true})
		b.Cleanup(func() { _ = s.Close() })
		fillAppointments(b, s, n, blobLen)
		benchUserLocators(b, s, testUser(7), n/100)
	})
}

// benchUserLocators runs UserLocators ("walk") and, as the baseline in the same run, the
// lookup it replaced ("get": one Bucket.Get per appointment).
func benchUserLocators(b *testing.B, s *Store, user teos.UserID, want int) {
	b.Helper()
	for _, impl := range []struct {
		name string
		fn   func(teos.UserID) ([]teos.Locator, error)
	}{{"get", s.userLocatorsByGet}, {"walk", s.UserLocators}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				locs, err := impl.fn(user)
				if err != nil {
					b.Fatal(err)
				}
				if len(locs) != want {
					b.Fatalf("%d locators, want %d", len(locs), want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(want), "ns/appointment")
		})
	}
}

// userLocatorsByGet is UserLocators as it was: a Get from the root for every appointment.
func (s *Store) userLocatorsByGet(id teos.UserID) ([]teos.Locator, error) {
	var locs []teos.Locator
	err := s.view(func(b *buckets) error {
		ids, err := userUUIDs(b, id)
		if err != nil {
			return err
		}
		locs = make([]teos.Locator, 0, len(ids))
		for _, uuid := range ids {
			v := b.appointments.Get(uuid[:])
			if v == nil {
				return fmt.Errorf("%w: index entry for missing appointment %s", ErrCorrupt, uuid)
			}
			loc, _, _, err := appointmentHead(v)
			if err != nil {
				return err
			}
			locs = append(locs, loc)
		}
		return nil
	})
	return locs, err
}
