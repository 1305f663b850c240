package grpcapi_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// fullDisk is a real store whose writes fail as on a full disk while full is set: the write
// is refused before anything is written, as bbolt rolls a failed commit back.
type fullDisk struct {
	*store.Store
	full   atomic.Bool
	writes atomic.Int32 // writes tried while full
	// lost makes reads fail as with a database connection gone (the PostgreSQL engine).
	lost atomic.Bool
	// stalled makes reads fail as when the database stops answering: the PostgreSQL engine's
	// own operation timeout.
	stalled atomic.Bool
}

var errStalled = fmt.Errorf("read user: %w", context.DeadlineExceeded)

var errConnLost = fmt.Errorf("read user: %w", syscall.ECONNRESET)

func (d *fullDisk) User(id teos.UserID) (store.UserInfo, bool, error) {
	if d.lost.Load() {
		return store.UserInfo{}, false, errConnLost
	}
	if d.stalled.Load() {
		return store.UserInfo{}, false, errStalled
	}
	return d.Store.User(id)
}

var errNoSpace = fmt.Errorf("commit: write teos.db: %w", syscall.ENOSPC)

func (d *fullDisk) refuse() bool {
	if d.full.Load() {
		d.writes.Add(1)
		return true
	}
	return false
}

func (d *fullDisk) UpdateUser(id teos.UserID, fn func(store.UserInfo, bool) (store.UserInfo, error)) (store.UserInfo, error) {
	if d.refuse() {
		return store.UserInfo{}, errNoSpace
	}
	return d.Store.UpdateUser(id, fn)
}

func (d *fullDisk) UpsertAppointment(a *store.Appointment, fn func(store.UserInfo, *store.Appointment, bool) (store.UserInfo, error)) (store.UserInfo, error) {
	if d.refuse() {
		return store.UserInfo{}, errNoSpace
	}
	return d.Store.UpsertAppointment(a, fn)
}

func (d *fullDisk) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	if d.refuse() {
		return nil, errNoSpace
	}
	return d.Store.UpsertAppointments(items)
}

type holdFixture struct {
	client   teosv2.PublicTowerServicesClient
	ext      teosv2.PublicTowerExtensionsClient
	disk     *fullDisk
	gate     *hold.Gate
	bitcoind *hold.Condition
	store    *hold.Condition
}

func newHoldFixture(t *testing.T, bound time.Duration) *holdFixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	disk := &fullDisk{Store: db}
	gk := gatekeeper.New(gatekeeper.Config{Store: disk, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: disk, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: key("tower")})
	f := &holdFixture{disk: disk, gate: hold.New(hold.Config{Bound: bound}),
		bitcoind: hold.NewCondition("bitcoind", 0), store: hold.NewCondition("store", time.Millisecond)}
	public := grpcapi.NewPublic(w, func() bool { return true }, nil)
	public.SetHold(grpcapi.Hold{Gate: f.gate, Bitcoind: f.bitcoind, Store: f.store})

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	teosv2.RegisterPublicTowerServicesServer(srv, public)
	teosv2.RegisterPublicTowerExtensionsServer(srv, grpcapi.NewExtensions(public))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f.client = teosv2.NewPublicTowerServicesClient(conn)
	f.ext = teosv2.NewPublicTowerExtensionsClient(conn)
	return f
}

func (f *holdFixture) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a generous bound: a request that is never held fails, not hangs
	for f.gate.Held() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d", f.gate.Held(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func holdAddRequest(t *testing.T, seed string) *commonv2.AddAppointmentRequest {
	t.Helper()
	a := teos.Appointment{EncryptedBlob: []byte("blob " + seed), ToSelfDelay: 20}
	copy(a.Locator[:], seed)
	return &commonv2.AddAppointmentRequest{
		Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: a.ToSelfDelay},
		Signature:   wtcrypto.SignMessage(a.SignedBytes(), key("user")),
	}
}

// While the disk is full, writes are held (not answered 255) and all of them are served, and
// stored, as soon as a write goes through again.
func TestDiskFullHeldThenServed(t *testing.T) {
	f := newHoldFixture(t, time.Hour)
	ctx := t.Context()
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := f.client.Register(ctx, &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	f.disk.full.Store(true)
	const n = 4
	errs := make(chan error, n+2)
	for i := range n {
		go func() {
			_, err := f.client.AddAppointment(ctx, holdAddRequest(t, fmt.Sprintf("appointment %d", i)))
			errs <- err
		}()
	}
	go func() {
		_, err := f.client.Register(ctx, &commonv2.RegisterRequest{UserId: userID[:]})
		errs <- err
	}()
	go func() {
		_, err := f.ext.AddAppointments(ctx, &teosv2.AddAppointmentsRequest{Appointments: []*commonv2.AddAppointmentRequest{holdAddRequest(t, "batch")}})
		errs <- err
	}()
	f.waitHeld(t, n+2)
	for f.disk.writes.Load() < n+4 { // the first try of each, then trials
		time.Sleep(time.Millisecond)
	}
	// Reads are not held by the store.
	if _, err := f.client.GetSubscriptionInfo(ctx, &commonv2.GetSubscriptionInfoRequest{
		Signature: wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, key("user"))}); err != nil {
		t.Fatalf("get_subscription_info while the disk is full: %v", err)
	}
	f.disk.full.Store(false)
	for range n + 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	locs, err := f.disk.UserLocators(userID)
	if err != nil || len(locs) != n+1 {
		t.Fatalf("stored locators %d (%v), want %d", len(locs), err, n+1)
	}
	info, _, _ := f.disk.User(userID)
	if info.SubscriptionExpiry != testHeight+200 {
		t.Fatalf("renewal not applied once: expiry %d", info.SubscriptionExpiry)
	}
}

// A read the store fails (its database connection lost) is held like a write, not answered
// 255, and served once the store answers again.
func TestStoreReadFaultHeldThenServed(t *testing.T) {
	f := newHoldFixture(t, time.Hour)
	ctx := t.Context()
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := f.client.Register(ctx, &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	f.disk.lost.Store(true)
	errs := make(chan error, 1)
	go func() {
		_, err := f.client.GetSubscriptionInfo(ctx, &commonv2.GetSubscriptionInfoRequest{
			Signature: wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, key("user"))})
		errs <- err
	}()
	f.waitHeld(t, 1)
	f.disk.lost.Store(false)
	if err := <-errs; err != nil {
		t.Fatalf("get_subscription_info after the store came back: %v", err)
	}
}

// A read that times out inside the store (a database that stopped answering) is a fault like
// a lost connection: held, not answered, and served once the store answers again. Both the
// single add and a batch.
func TestStoreTimeoutHeldThenServed(t *testing.T) {
	f := newHoldFixture(t, time.Hour)
	ctx := t.Context()
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := f.client.Register(ctx, &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	f.disk.stalled.Store(true)
	errs := make(chan error, 2)
	go func() {
		_, err := f.client.AddAppointment(ctx, holdAddRequest(t, "single"))
		errs <- err
	}()
	go func() {
		resp, err := f.ext.AddAppointments(ctx, &teosv2.AddAppointmentsRequest{Appointments: []*commonv2.AddAppointmentRequest{holdAddRequest(t, "batch")}})
		if err == nil && resp.GetResults()[0].GetReceipt() == nil {
			err = fmt.Errorf("batch item: %v", resp.GetResults()[0].GetError())
		}
		errs <- err
	}()
	f.waitHeld(t, 2)
	f.disk.stalled.Store(false)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("add after the store answered again: %v", err)
		}
	}
}

// A fault that outlasts the bound is answered 503 / 32's status, and nothing is written.
func TestFaultPastBoundUnavailable(t *testing.T) {
	f := newHoldFixture(t, 20*time.Millisecond)
	ctx := t.Context()
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := f.client.Register(ctx, &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	f.disk.full.Store(true)
	_, err := f.client.AddAppointment(ctx, holdAddRequest(t, "late"))
	wantStatus(t, err, codes.Unavailable, msgUnavailable)
	_, err = f.ext.AddAppointments(ctx, &teosv2.AddAppointmentsRequest{Appointments: []*commonv2.AddAppointmentRequest{holdAddRequest(t, "late")}})
	wantStatus(t, err, codes.Unavailable, msgUnavailable)
	f.disk.full.Store(false)
	if locs, _ := f.disk.UserLocators(userID); len(locs) != 0 {
		t.Fatalf("%d appointments written by refused requests", len(locs))
	}

	f.bitcoind.Down(fmt.Errorf("connection refused"))
	for _, c := range []call{
		register(&commonv2.RegisterRequest{UserId: userID[:]}),
		add(holdAddRequest(t, "x")),
		get(&commonv2.GetAppointmentRequest{Locator: make([]byte, 16), Signature: "x"}),
		info(&commonv2.GetSubscriptionInfoRequest{Signature: "x"}),
	} {
		wantStatus(t, c(ctx, f.client), codes.Unavailable, msgUnavailable)
	}
}

// Held on bitcoind, every endpoint is released the moment it is back.
func TestBitcoindOutageHeldThenServed(t *testing.T) {
	f := newHoldFixture(t, time.Hour)
	ctx := t.Context()
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	f.bitcoind.Down(fmt.Errorf("connection refused"))
	errs := make(chan error, 2)
	go func() { errs <- register(&commonv2.RegisterRequest{UserId: userID[:]})(ctx, f.client) }()
	f.waitHeld(t, 1)
	f.bitcoind.Up()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// A client that goes away frees its slot.
	f.bitcoind.Down(fmt.Errorf("connection refused"))
	cctx, cancel := context.WithCancel(ctx)
	go func() { errs <- add(holdAddRequest(t, "gone"))(cctx, f.client) }()
	f.waitHeld(t, 1)
	cancel()
	<-errs
	f.waitHeld(t, 0)
}

// An add_appointments call asking not to be held (the HTTP edge's coalesced batches) is
// answered Unavailable at once, nothing written, when the store fails its write, and that
// fault marks the store down so the adds the edge sends again alone are held. While a
// condition is down it is not even tried; once all are up it is served.
func TestNoHoldBatchNotHeld(t *testing.T) {
	f := newHoldFixture(t, time.Hour)
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := f.client.Register(t.Context(), &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	// A held call would end on this deadline instead of Unavailable.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	noHold := metadata.AppendToOutgoingContext(ctx, grpcapi.NoHoldHeader, "1")
	batch := &teosv2.AddAppointmentsRequest{Appointments: []*commonv2.AddAppointmentRequest{holdAddRequest(t, "a"), holdAddRequest(t, "b")}}

	f.disk.full.Store(true)
	if _, err := f.ext.AddAppointments(noHold, batch); status.Code(err) != codes.Unavailable {
		t.Fatalf("batch on a full disk: %v, want Unavailable at once", err)
	}
	if f.store.IsUp() {
		t.Error("the batch's store fault left the store condition up")
	}
	tried := f.disk.writes.Load()
	if _, err := f.ext.AddAppointments(noHold, batch); status.Code(err) != codes.Unavailable {
		t.Fatalf("batch while the store is down: %v, want Unavailable at once", err)
	}
	if f.disk.writes.Load() != tried {
		t.Error("a batch was tried while the store was down")
	}
	if f.gate.Held() != 0 {
		t.Errorf("%d requests held, want none", f.gate.Held())
	}

	f.disk.full.Store(false)
	f.store.Up()
	resp, err := f.ext.AddAppointments(noHold, batch)
	if err != nil || len(resp.GetResults()) != 2 || resp.GetResults()[0].GetReceipt() == nil || resp.GetResults()[1].GetReceipt() == nil {
		t.Fatalf("batch with every condition up: %v %v, want two receipts", resp, err)
	}
	if locs, err := f.disk.UserLocators(userID); err != nil || len(locs) != 2 {
		t.Errorf("%d locators stored (%v), want 2", len(locs), err)
	}
}

// noDeleteStore is a store without DeleteUserAppointment, as the PostgreSQL engine.
type noDeleteStore struct{ watcher.Store }

// On a store that cannot delete (PostgreSQL), delete_appointment is answered at once as not
// served, is not held as a store fault (which would mark the store down and hold every write),
// and is not advertised.
func TestDeleteUnsupportedIsAnAnswer(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: noDeleteStore{db}, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: key("tower")})
	gate, storeCond := hold.New(hold.Config{Bound: time.Hour}), hold.NewCondition("store", time.Millisecond)
	public := grpcapi.NewPublic(w, func() bool { return true }, nil)
	public.SetHold(grpcapi.Hold{Gate: gate, Bitcoind: hold.NewCondition("bitcoind", 0), Store: storeCond})
	ext := grpcapi.NewExtensions(public)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a held request would end here
	defer cancel()
	a := holdAddRequest(t, "x")
	_, err = ext.DeleteAppointment(ctx, &teosv2.DeleteAppointmentRequest{Locator: a.GetAppointment().GetLocator(),
		Signature: wtcrypto.SignMessage(teos.DeleteAppointmentMessage(teos.Locator(a.GetAppointment().GetLocator())), key("user"))})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("delete_appointment on a store that cannot delete: %v, want Unimplemented at once", err)
	}
	if !storeCond.IsUp() || gate.Held() != 0 {
		t.Errorf("store condition up %v, %d held: the answer was taken for a fault", storeCond.IsUp(), gate.Held())
	}
	info, err := ext.GetInfo(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(info.GetExtensions(), teos.ExtensionDeleteAppointment) {
		t.Errorf("/info advertises %s on a store that cannot delete: %v", teos.ExtensionDeleteAppointment, info.GetExtensions())
	}
}
