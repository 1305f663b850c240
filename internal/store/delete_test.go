package store

import (
	"errors"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

func TestDeleteUserAppointment(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice, bob := testUser(1), testUser(2)
		register(t, s, alice, 10, 500)
		register(t, s, bob, 10, 500)
		big := testAppointment(alice, testLocator(1), 3*teos.EncryptedBlobMaxSize) // 3 slots
		mustUpsert(t, s, big)
		mustUpsert(t, s, testAppointment(bob, testLocator(1), 10))
		tracked := testAppointment(alice, testLocator(2), 10)
		mustUpsert(t, s, tracked)
		if err := s.PutTracker(&Tracker{UUID: tracked.UUID(), DisputeTx: []byte{1}, PenaltyTx: []byte{2}}); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 6 {
			t.Fatalf("alice has %d slots, want 6", got)
		}

		refuse := errors.New("policy says no")
		if _, err := s.DeleteUserAppointment(alice, big.UUID(), func(UserInfo) error { return refuse }); !errors.Is(err, refuse) {
			t.Fatalf("policy refusal: %v", err)
		}
		// Bob's id with alice's UUID: not his.
		if _, err := s.DeleteUserAppointment(bob, big.UUID(), nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another user's appointment: %v, want ErrNotFound", err)
		}
		if _, err := s.DeleteUserAppointment(alice, tracked.UUID(), nil); !errors.Is(err, ErrTriggered) {
			t.Fatalf("tracked appointment: %v, want ErrTriggered", err)
		}
		if _, err := s.DeleteUserAppointment(testUser(3), big.UUID(), nil); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("unregistered user: %v, want ErrUserNotFound", err)
		}
		wantCounts(t, s, 2, 2, 1)

		info, err := s.DeleteUserAppointment(alice, big.UUID(), nil)
		if err != nil || info.AvailableSlots != 9 {
			t.Fatalf("delete: %+v, %v; want 9 slots (3 refunded)", info, err)
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 9 {
			t.Fatalf("alice has %d slots after reopening, want 9", got)
		}
		if _, err := s.Appointment(big.UUID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted appointment still there: %v", err)
		}
		if got, _ := s.AppointmentsByLocator(testLocator(1)); len(got) != 1 || got[0].UserID != bob {
			t.Fatalf("locator index after the deletion: %v", got)
		}
		if _, err := s.DeleteUserAppointment(alice, big.UUID(), nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second deletion: %v, want ErrNotFound", err)
		}
		wantCounts(t, s, 2, 1, 1)
	})
}

func TestAllowlist(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		if ok, err := s.UserAllowed(testUser(1)); ok || err != nil {
			t.Fatalf("empty allowlist: %v %v", ok, err)
		}
		for _, c := range []struct {
			add     bool
			id      int
			changed bool
		}{{true, 1, true}, {true, 1, false}, {true, 2, true}, {false, 2, true}, {false, 2, false}, {false, 3, false}} {
			var changed bool
			var err error
			if c.add {
				changed, err = s.AllowUser(testUser(c.id))
			} else {
				changed, err = s.DisallowUser(testUser(c.id))
			}
			if err != nil || changed != c.changed {
				t.Fatalf("add=%v user %d: changed=%v err=%v, want changed=%v", c.add, c.id, changed, err, c.changed)
			}
		}
		s = reopen()
		ids, err := s.AllowedUsers()
		if err != nil || len(ids) != 1 || ids[0] != testUser(1) {
			t.Fatalf("AllowedUsers = %v, %v", ids, err)
		}
		if ok, _ := s.UserAllowed(testUser(2)); ok {
			t.Fatal("removed user still allowed")
		}
	})
}

func TestStoredBytesGrows(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", &Options{NoSync: true})
	defer s.Close()
	before, err := s.StoredBytes()
	if err != nil {
		t.Fatal(err)
	}
	register(t, s, testUser(1), 10_000, 500)
	for i := range 2000 {
		mustUpsert(t, s, testAppointment(testUser(1), testLocator(i), 500))
	}
	after, err := s.StoredBytes()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 2000*500 {
		t.Fatalf("StoredBytes grew by %d for 2000 blobs of 500 bytes", after-before)
	}
}
