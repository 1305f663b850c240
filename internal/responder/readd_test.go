package responder

import (
	"testing"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// readdStore deletes and re-adds one appointment just before a block's changes are committed,
// as an expired user who registers again and re-sends it would.
type readdStore struct {
	*store.Store
	t  *testing.T
	id teos.UUID
	on bool
}

func (s *readdStore) ApplyChanges(c *store.Changes) error {
	if s.on {
		s.on = false
		a, err := s.Appointment(s.id)
		if err != nil {
			s.t.Fatal(err)
		}
		if err := s.DeleteAppointments([]teos.UUID{s.id}, false); err != nil {
			s.t.Fatal(err)
		}
		a.UserSignature = "re-added"
		if _, err := s.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }); err != nil {
			s.t.Fatal(err)
		}
	}
	return s.Store.ApplyChanges(c)
}

// A completion or a confirmation decided on a tracker does not touch the appointment that
// replaced it meanwhile: the new one is neither deleted nor given the old tracker.
func TestReaddedAppointmentSurvivesBlockDecidedOnOldTracker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		advance uint32 // blocks after the penalty's, the last one racing the re-add
	}{
		{"confirmation", 0},
		{"completion", teos.IrrevocablyResolved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.newBreach(t, 1)
			e.handle(t, b)
			rs := &readdStore{Store: e.store, t: t, id: b.id}
			e.r.store = rs
			mined := uint32(startHeight + 1)
			if tc.advance > 0 {
				e.connect(t, mined, b.penalty)
				e.connectRange(t, mined+1, mined+tc.advance-1)
			}
			rs.on = true
			if tc.advance == 0 {
				e.connect(t, mined, b.penalty)
			} else {
				e.connect(t, mined+tc.advance)
			}
			if rs.on {
				t.Fatal("the re-add did not run before the commit")
			}
			a, err := e.store.Appointment(b.id)
			if err != nil || a.UserSignature != "re-added" {
				t.Fatalf("re-added appointment: %v, %v", a, err)
			}
			if tr := e.tracker(t, b); tr != nil {
				t.Fatalf("the re-added appointment got the old tracker: %+v", tr)
			}
		})
	}
}
