package grpcapi_test

import (
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/api/msglimit"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// countingStore counts the appointments ForEachAppointment hands out.
type countingStore struct {
	*store.Store
	visited int
}

func (c *countingStore) ForEachAppointment(loc *teos.Locator, fn func(a *store.Appointment, t *store.Tracker) error) error {
	return c.Store.ForEachAppointment(loc, func(a *store.Appointment, t *store.Tracker) error {
		c.visited++
		return fn(a, t)
	})
}

// TestGetAllAppointmentsStopsAtTheLimit: on a tower whose appointments do not fit in one
// answer, get_all_appointments gives up as soon as the answer passes the limit, with the
// limit's error, instead of reading every appointment into memory (gigabytes on a big tower)
// for the size check to refuse afterwards. An answer at the limit exactly still goes out.
func TestGetAllAppointmentsStopsAtTheLimit(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	user := privRandomUser(t)
	const n = 200
	appts := make([]*store.Appointment, n)
	for i := range appts {
		appts[i] = &store.Appointment{
			Appointment: teos.Appointment{EncryptedBlob: privRandom(t, 100), ToSelfDelay: 42},
			UserID:      user, UserSignature: "sig", StartBlock: 1,
		}
		copy(appts[i].Locator[:], privRandom(t, teos.LocatorLen))
	}
	if err := db.BulkLoad(map[teos.UserID]store.UserInfo{user: {AvailableSlots: 1, SubscriptionExpiry: 100}}, appts); err != nil {
		t.Fatal(err)
	}
	full, err := grpcapi.NewPrivate(grpcapi.PrivateConfig{Store: db}).GetAllAppointments(t.Context(), &emptypb.Empty{})
	if err != nil || len(full.GetAppointments()) != n {
		t.Fatalf("without a small limit: %d appointments, %v", len(full.GetAppointments()), err)
	}
	entry := proto.Size(full) / n // every entry has the same size

	const limit = 2000
	counted := &countingStore{Store: db}
	_, err = grpcapi.NewPrivate(grpcapi.PrivateConfig{Store: counted, AnswerLimit: limit}).GetAllAppointments(t.Context(), &emptypb.Empty{})
	if !msglimit.IsOverflow(err) {
		t.Fatalf("over the limit: %v, want the limit's error", err)
	}
	if most := limit/entry + 1; counted.visited > most {
		t.Fatalf("read %d of %d appointments for an answer that could hold %d", counted.visited, n, most-1)
	}

	exact, err := grpcapi.NewPrivate(grpcapi.PrivateConfig{Store: db, AnswerLimit: proto.Size(full)}).GetAllAppointments(t.Context(), &emptypb.Empty{})
	if err != nil || len(exact.GetAppointments()) != n {
		t.Fatalf("at the limit exactly: %d appointments, %v", len(exact.GetAppointments()), err)
	}
	_, err = grpcapi.NewPrivate(grpcapi.PrivateConfig{Store: db, AnswerLimit: proto.Size(full) - 1}).GetAllAppointments(t.Context(), &emptypb.Empty{})
	if !msglimit.IsOverflow(err) {
		t.Fatalf("one byte over the limit: %v, want the limit's error", err)
	}
}
