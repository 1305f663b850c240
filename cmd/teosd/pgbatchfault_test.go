package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// authFault reads one user's record through a store whose connections are closed, a
// PostgreSQL engine's own fault (not an answer), while faulty is set.
type authFault struct {
	*pgstore.Store
	down   *pgstore.Store
	victim teos.UserID
	faulty atomic.Bool
}

func (a *authFault) User(id teos.UserID) (store.UserInfo, bool, error) {
	if a.faulty.Load() && id == a.victim {
		return a.down.User(id)
	}
	return a.Store.User(id)
}

type batchFixture struct {
	db    *pgstore.Store
	auth  *authFault
	gate  *hold.Gate
	ext   *grpcapi.Extensions
	users []*btcec.PrivateKey // alice, mallory (her read faults), bob
}

// newBatchFixture is a shared instance's add path on PostgreSQL (as startShared builds it),
// with the held batch's bound.
func newBatchFixture(t *testing.T, bound time.Duration) *batchFixture {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	open := func() *pgstore.Store {
		s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f := &batchFixture{db: open()}
	t.Cleanup(func() { _ = f.db.Close() })
	down := open()
	_ = down.Close()
	for range 3 {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		f.users = append(f.users, k)
	}
	f.auth = &authFault{Store: f.db, down: down, victim: teos.UserIDFromPubKey(f.users[1].PubKey())}
	gk := gatekeeper.New(gatekeeper.Config{Store: f.auth, SubscriptionSlots: 100, SubscriptionDuration: 1000, ExpiryDelta: 6}, 200)
	for _, k := range f.users {
		if _, err := gk.Register(teos.UserIDFromPubKey(k.PubKey())); err != nil {
			t.Fatal(err)
		}
	}
	tower, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	w := watcher.New(watcher.Config{Store: f.db, Gatekeeper: gk, Responder: &swapResponder{}, TowerKey: tower})
	f.gate = hold.New(hold.Config{Bound: bound})
	public := grpcapi.NewPublic(w, func() bool { return true }, nil)
	public.SetHold(grpcapi.Hold{Gate: f.gate, Bitcoind: hold.NewCondition("bitcoind", 0), Store: hold.NewCondition("store", time.Millisecond)})
	f.ext = grpcapi.NewExtensions(public)
	return f
}

func (f *batchFixture) request() *teosv2.AddAppointmentsRequest {
	req := &teosv2.AddAppointmentsRequest{}
	for i, k := range f.users {
		a := teos.Appointment{Locator: teos.Locator{byte(i + 1)}, EncryptedBlob: []byte{byte(i)}, ToSelfDelay: 42}
		req.Appointments = append(req.Appointments, &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: 42},
			Signature:   wtcrypto.SignMessage(a.SignedBytes(), k),
		})
	}
	return req
}

// stored reports, per user, whether their appointment of request is in the database.
func (f *batchFixture) stored(t *testing.T) []bool {
	var out []bool
	for i, k := range f.users {
		_, err := f.db.Appointment(teos.NewUUID(teos.Locator{byte(i + 1)}, teos.UserIDFromPubKey(k.PubKey())))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		out = append(out, err == nil)
	}
	return out
}

// On PostgreSQL too, a store fault while authenticating one item of an add_appointments batch
// writes nothing of the batch: it is held, and past the bound answered Unavailable ("nothing
// written"), which must then be true.
func TestSharedAuthFaultInBatchWritesNothing(t *testing.T) {
	f := newBatchFixture(t, 200*time.Millisecond)
	f.auth.faulty.Store(true)
	_, err := f.ext.AddAppointments(t.Context(), f.request())
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("batch with a read fault past the bound = %v; want Unavailable", err)
	}
	for i, ok := range f.stored(t) {
		if ok {
			t.Errorf("item %d stored, though the batch was answered Unavailable", i)
		}
	}
}

// The fault clears while the batch is held: every item gets its receipt and is stored.
func TestSharedTransientAuthFaultInBatch(t *testing.T) {
	f := newBatchFixture(t, time.Hour)
	f.auth.faulty.Store(true)
	type answer struct {
		resp *teosv2.AddAppointmentsResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := f.ext.AddAppointments(context.Background(), f.request())
		done <- answer{resp, err}
	}()
	for f.gate.Held() != 1 {
		select {
		case a := <-done:
			t.Fatalf("answered while the read faulted: %v, %v", a.resp, a.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	f.auth.faulty.Store(false)
	a := <-done
	if a.err != nil || len(a.resp.GetResults()) != 3 {
		t.Fatalf("batch = %v, %v", a.resp, a.err)
	}
	for i, r := range a.resp.GetResults() {
		if r.GetReceipt() == nil {
			t.Errorf("item %d: %v; want a receipt", i, r)
		}
	}
	for i, ok := range f.stored(t) {
		if !ok {
			t.Errorf("item %d not stored", i)
		}
	}
}
