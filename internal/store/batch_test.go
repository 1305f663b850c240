package store

import (
	"errors"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

var errSlots = errors.New("not enough slots")

// slotPolicy charges like the gatekeeper and refuses when the user cannot pay.
func slotPolicy(a *Appointment) AppointmentPolicy {
	return func(u UserInfo, prev *Appointment, triggered bool) (UserInfo, error) {
		if triggered {
			return u, errTriggered
		}
		var old uint32
		if prev != nil {
			old = teos.Slots(len(prev.EncryptedBlob))
		}
		need := teos.Slots(len(a.EncryptedBlob))
		if u.AvailableSlots+old < need {
			return u, errSlots
		}
		u.AvailableSlots = u.AvailableSlots + old - need
		return u, nil
	}
}

func upserts(as ...*Appointment) []AppointmentUpsert {
	out := make([]AppointmentUpsert, len(as))
	for i, a := range as {
		out[i] = AppointmentUpsert{Appointment: a, Policy: slotPolicy(a)}
	}
	return out
}

func TestUpsertAppointmentsOneCommitSequentialSlots(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice, bob, nobody := testUser(1), testUser(2), testUser(3)
		register(t, s, alice, 3, 1000)
		register(t, s, bob, 10, 1000)
		before := commits(t, s)

		a1 := testAppointment(alice, testLocator(1), 100)
		b1 := testAppointment(bob, testLocator(2), 100)
		a2 := testAppointment(alice, testLocator(3), 3000) // 2 slots: alice has 2 left
		a3 := testAppointment(alice, testLocator(4), 100)  // alice has 0 left: refused
		ghost := testAppointment(nobody, testLocator(5), 100)
		a1again := testAppointment(alice, testLocator(1), 50) // update of a1: costs nothing more
		res, err := s.UpsertAppointments(upserts(a1, b1, a2, a3, ghost, a1again))
		if err != nil {
			t.Fatalf("UpsertAppointments: %v", err)
		}
		if got := commits(t, s) - before; got != 1 {
			t.Fatalf("batch took %d commits, want 1", got)
		}
		wantSlots := []uint32{2, 9, 0, 0, 0, 0}
		wantErr := []error{nil, nil, nil, errSlots, ErrUserNotFound, nil}
		for i, r := range res {
			if !errors.Is(r.Err, wantErr[i]) || (wantErr[i] == nil && r.Err != nil) {
				t.Errorf("item %d: err = %v, want %v", i, r.Err, wantErr[i])
			}
			if r.User.AvailableSlots != wantSlots[i] {
				t.Errorf("item %d: slots = %d, want %d", i, r.User.AvailableSlots, wantSlots[i])
			}
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 0 {
			t.Fatalf("alice slots = %d, want 0", got)
		}
		if got, err := s.Appointment(a1.UUID()); err != nil || !appointmentsEqual(got, a1again) {
			t.Fatalf("a1 = %+v, %v; want the later item of the batch", got, err)
		}
		for _, a := range []*Appointment{a3, ghost} {
			if _, err := s.Appointment(a.UUID()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused item stored: %v", err)
			}
		}
		wantCounts(t, s, 2, 3, 0)
	})
}

func TestUpsertAppointmentsAllRefusedCommitsNothing(t *testing.T) {
	s := mustOpen(t, t.TempDir()+"/teos.db", nil)
	t.Cleanup(func() { _ = s.Close() })
	alice := testUser(1)
	register(t, s, alice, 1, 1000)
	before := commits(t, s)
	big := testAppointment(alice, testLocator(1), 5000)
	res, err := s.UpsertAppointments(upserts(big, testAppointment(testUser(9), testLocator(2), 1)))
	if err != nil {
		t.Fatalf("UpsertAppointments: %v", err)
	}
	if !errors.Is(res[0].Err, errSlots) || !errors.Is(res[1].Err, ErrUserNotFound) {
		t.Fatalf("results = %+v", res)
	}
	if got := commits(t, s) - before; got != 0 {
		t.Fatalf("all-refused batch took %d commits", got)
	}
	if res, err := s.UpsertAppointments(nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch = %v, %v", res, err)
	}
	if _, err := s.UpsertAppointments([]AppointmentUpsert{{Appointment: big}}); err == nil {
		t.Fatal("item without policy accepted")
	}
}
