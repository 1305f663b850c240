package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// privFixture is a Private service over bufconn on a real store holding two users: alice with
// two appointments, one of them triggered (a tracker), and bob with two, one sharing alice's
// locator.
type privFixture struct {
	db        *store.Store
	client    teosv2.PrivateTowerServicesClient
	towerID   teos.UserID
	alice     teos.UserID
	bob       teos.UserID
	shared    teos.Locator // alice's and bob's
	triggered teos.Locator // alice's, with a tracker
	bobOnly   teos.Locator
	appts     map[teos.UUID]*store.Appointment
	tracker   *store.Tracker
	reachable atomic.Bool
	stopped   chan struct{}
	logs      *privLockedBuffer
}

type privLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *privLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *privLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func privRandomUser(t *testing.T) teos.UserID {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return teos.UserIDFromPubKey(k.PubKey())
}

func privRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newPrivFixture serves the fixture; opts adjust the service's configuration.
func newPrivFixture(t *testing.T, opts ...func(*grpcapi.PrivateConfig)) *privFixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &privFixture{
		db:      db,
		towerID: privRandomUser(t),
		alice:   privRandomUser(t),
		bob:     privRandomUser(t),
		appts:   make(map[teos.UUID]*store.Appointment),
		stopped: make(chan struct{}),
		logs:    &privLockedBuffer{},
	}
	copy(f.shared[:], privRandom(t, teos.LocatorLen))
	copy(f.triggered[:], privRandom(t, teos.LocatorLen))
	copy(f.bobOnly[:], privRandom(t, teos.LocatorLen))
	f.reachable.Store(true)

	for i, u := range []teos.UserID{f.alice, f.bob} {
		_, err := db.UpdateUser(u, func(store.UserInfo, bool) (store.UserInfo, error) {
			return store.UserInfo{AvailableSlots: 100 + uint32(i), SubscriptionStart: 200, SubscriptionExpiry: 300 + uint32(i)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ua := range []struct {
		user teos.UserID
		loc  teos.Locator
	}{{f.alice, f.shared}, {f.alice, f.triggered}, {f.bob, f.shared}, {f.bob, f.bobOnly}} {
		a := &store.Appointment{
			Appointment:   teos.Appointment{Locator: ua.loc, EncryptedBlob: privRandom(t, 50), ToSelfDelay: 42},
			UserID:        ua.user,
			UserSignature: "sig",
			StartBlock:    201,
		}
		_, err := db.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil })
		if err != nil {
			t.Fatal(err)
		}
		f.appts[a.UUID()] = a
	}
	f.tracker = &store.Tracker{
		UUID:      teos.NewUUID(f.triggered, f.alice),
		DisputeTx: privRandom(t, 80),
		PenaltyTx: privRandom(t, 90),
		Height:    205,
	}
	copy(f.tracker.DisputeTxID[:], privRandom(t, 32))
	copy(f.tracker.PenaltyTxID[:], privRandom(t, 32))
	if err := db.PutTracker(f.tracker); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(grpcapi.LogRequests(logger)))
	var once sync.Once
	cfg := grpcapi.PrivateConfig{
		Store:     db,
		TowerID:   f.towerID,
		Reachable: f.reachable.Load,
		Addresses: []grpcapi.Address{
			{Type: teosv2.NetworkAddress_IpV4, Host: "127.0.0.1", Port: 9814},
			{Type: teosv2.NetworkAddress_TorV3, Host: strings.Repeat("a", 56) + ".onion", Port: 9814},
		},
		Shutdown: func() { once.Do(func() { close(f.stopped) }) },
		Logger:   logger,
	}
	for _, o := range opts {
		o(&cfg)
	}
	teosv2.RegisterPrivateTowerServicesServer(srv, grpcapi.NewPrivate(cfg))
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.client = teosv2.NewPrivateTowerServicesClient(conn)
	return f
}

func (f *privFixture) appointmentData(id teos.UUID) *commonv2.AppointmentData {
	return grpcapi.AppointmentData(f.appts[id])
}

// checkStatus fails unless err is a gRPC status with exactly code and msg.
func privCheckStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	s, ok := status.FromError(err)
	if !ok || s.Code() != code || s.Message() != msg {
		t.Fatalf("%s: got %v, want %s %q", what, err, code, msg)
	}
}

// sameSet compares two lists of messages ignoring order.
func privSameSet(got, want []*commonv2.AppointmentData) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(want))
	for _, g := range got {
		found := false
		for i, w := range want {
			if !used[i] && proto.Equal(g, w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestPrivateGetAllAppointments(t *testing.T) {
	f := newPrivFixture(t)
	resp, err := f.client.GetAllAppointments(t.Context(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetAppointments()
	if len(got) != 4 {
		t.Fatalf("%d appointments, want 4", len(got))
	}
	// Appointments still watched first, then trackers.
	want := []*commonv2.AppointmentData{
		f.appointmentData(teos.NewUUID(f.shared, f.alice)),
		f.appointmentData(teos.NewUUID(f.shared, f.bob)),
		f.appointmentData(teos.NewUUID(f.bobOnly, f.bob)),
	}
	if !privSameSet(got[:3], want) {
		t.Fatalf("watched appointments %v, want %v", got[:3], want)
	}
	if !proto.Equal(got[3], grpcapi.TrackerData(f.tracker)) {
		t.Fatalf("last entry %v, want the tracker", got[3])
	}
	tr := got[3].GetTracker()
	if !bytes.Equal(tr.GetDisputeTxid(), f.tracker.DisputeTxID[:]) || !bytes.Equal(tr.GetPenaltyRawtx(), f.tracker.PenaltyTx) {
		t.Fatalf("tracker fields %v", tr)
	}
}

func TestPrivateGetAppointments(t *testing.T) {
	f := newPrivFixture(t)
	var unknown teos.Locator
	for _, tc := range []struct {
		name string
		loc  teos.Locator
		want []*commonv2.AppointmentData
	}{
		{"two users", f.shared, []*commonv2.AppointmentData{
			f.appointmentData(teos.NewUUID(f.shared, f.alice)),
			f.appointmentData(teos.NewUUID(f.shared, f.bob)),
		}},
		{"tracker", f.triggered, []*commonv2.AppointmentData{grpcapi.TrackerData(f.tracker)}},
		{"one", f.bobOnly, []*commonv2.AppointmentData{f.appointmentData(teos.NewUUID(f.bobOnly, f.bob))}},
		{"unknown", unknown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.client.GetAppointments(t.Context(), &teosv2.GetAppointmentsRequest{Locator: tc.loc[:]})
			if err != nil {
				t.Fatal(err)
			}
			if !privSameSet(resp.GetAppointments(), tc.want) {
				t.Fatalf("got %v, want %v", resp.GetAppointments(), tc.want)
			}
		})
	}
	for _, n := range []int{0, 15, 17, 32} {
		_, err := f.client.GetAppointments(t.Context(), &teosv2.GetAppointmentsRequest{Locator: make([]byte, n)})
		privCheckStatus(t, fmt.Sprintf("locator of %d bytes", n), err, codes.InvalidArgument,
			"The provided locator does not match the expected format (16-byte hexadecimal string)")
	}
}

func TestPrivateGetTowerInfo(t *testing.T) {
	f := newPrivFixture(t)
	for _, reachable := range []bool{true, false} {
		f.reachable.Store(reachable)
		info, err := f.client.GetTowerInfo(t.Context(), &emptypb.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		want := &teosv2.GetTowerInfoResponse{
			TowerId:              f.towerID[:],
			NRegisteredUsers:     2,
			NWatcherAppointments: 3,
			NResponderTrackers:   1,
			BitcoindReachable:    reachable,
			Addresses: []*teosv2.NetworkAddress{
				{AddressType: teosv2.NetworkAddress_IpV4, Address: "127.0.0.1", Port: 9814},
				{AddressType: teosv2.NetworkAddress_TorV3, Address: strings.Repeat("a", 56) + ".onion", Port: 9814},
			},
			Role: teosv2.TowerRole_TOWER_ROLE_STANDALONE, // no Leadership: a bbolt tower
		}
		if !proto.Equal(info, want) {
			t.Fatalf("tower info %v, want %v", info, want)
		}
	}
}

func TestPrivateGetUsers(t *testing.T) {
	f := newPrivFixture(t)
	resp, err := f.client.GetUsers(t.Context(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetUserIds()
	slices.SortFunc(got, bytes.Compare)
	want := [][]byte{f.alice[:], f.bob[:]}
	slices.SortFunc(want, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("user ids %x, want %x", got, want)
	}
}

func TestPrivateGetUser(t *testing.T) {
	f := newPrivFixture(t)
	resp, err := f.client.GetUser(t.Context(), &teosv2.GetUserRequest{UserId: f.alice[:]})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAvailableSlots() != 100 || resp.GetSubscriptionExpiry() != 300 {
		t.Fatalf("alice: %v", resp)
	}
	// UUIDs, not locators, triggered ones included.
	got := resp.GetAppointments()
	slices.SortFunc(got, bytes.Compare)
	u1, u2 := teos.NewUUID(f.shared, f.alice), teos.NewUUID(f.triggered, f.alice)
	want := [][]byte{u1[:], u2[:]}
	slices.SortFunc(want, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("alice's appointments %x, want %x", got, want)
	}

	const badKey = "Provided public key does not match expected format (33-byte compressed key)"
	notOnCurve := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...)
	for name, id := range map[string][]byte{
		"empty":        nil,
		"short":        f.alice[:32],
		"long":         append(f.alice[:], 0),
		"prefix 04":    append([]byte{0x04}, f.alice[1:]...),
		"not on curve": notOnCurve,
	} {
		_, err := f.client.GetUser(t.Context(), &teosv2.GetUserRequest{UserId: id})
		privCheckStatus(t, name, err, codes.InvalidArgument, badKey)
	}
	stranger := privRandomUser(t)
	_, err = f.client.GetUser(t.Context(), &teosv2.GetUserRequest{UserId: stranger[:]})
	privCheckStatus(t, "unknown user", err, codes.NotFound, "User not found")
}

func TestPrivateStop(t *testing.T) {
	f := newPrivFixture(t)
	select {
	case <-f.stopped:
		t.Fatal("shutdown triggered before stop")
	default:
	}
	if _, err := f.client.Stop(t.Context(), &emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.stopped:
	default:
		t.Fatal("stop did not trigger the shutdown")
	}
}

func TestPrivateStoreFailureIsInternal(t *testing.T) {
	f := newPrivFixture(t)
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := f.client.GetUsers(t.Context(), &emptypb.Empty{})
	privCheckStatus(t, "get_users on a closed store", err, codes.Internal, "internal error")
	_, err = f.client.GetTowerInfo(t.Context(), &emptypb.Empty{})
	privCheckStatus(t, "get_tower_info on a closed store", err, codes.Internal, "internal error")
	if !strings.Contains(f.logs.String(), "level=ERROR") {
		t.Fatalf("internal error not logged:\n%s", f.logs)
	}
}

func TestLogRequests(t *testing.T) {
	f := newPrivFixture(t)
	stranger := privRandomUser(t)
	_, _ = f.client.GetUser(t.Context(), &teosv2.GetUserRequest{UserId: stranger[:]})
	_, _ = f.client.GetUsers(t.Context(), &emptypb.Empty{})
	logs := f.logs.String()
	for _, want := range []string{
		"level=DEBUG msg=rpc component=grpc method=/teos.v2.PrivateTowerServices/get_user code=NotFound duration=",
		"level=DEBUG msg=rpc component=grpc method=/teos.v2.PrivateTowerServices/get_users code=OK duration=",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q in logs:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, stranger.String()) {
		t.Errorf("request payload logged:\n%s", logs)
	}
}

// skippingStore is the fixture's store reporting, after its listing, one record it could not
// read, as store.Store does for a damaged record (store's TestAppointmentWalkSkipsUnreadableRecords).
type skippingStore struct{ grpcapi.PrivateStore }

func (s skippingStore) ForEachAppointment(loc *teos.Locator, fn func(*store.Appointment, *store.Tracker) error) error {
	if err := s.PrivateStore.ForEachAppointment(loc, fn); err != nil {
		return err
	}
	return fmt.Errorf("walk appointments: %w", &store.UnreadableRecords{Count: 1, First: []error{fmt.Errorf("appointment 00ff: %w", store.ErrCorrupt)}})
}

// A record the store could not read must not hide every other from the admin: the listing
// holds the readable ones and the log names the skipped one.
func TestPrivateListingsLeaveOutUnreadableRecords(t *testing.T) {
	f := newPrivFixture(t, func(c *grpcapi.PrivateConfig) { c.Store = skippingStore{c.Store} })
	all, err := f.client.GetAllAppointments(t.Context(), &emptypb.Empty{})
	if err != nil || len(all.GetAppointments()) != 4 {
		t.Fatalf("GetAllAppointments = %d appointments, %v; want the 4 readable ones", len(all.GetAppointments()), err)
	}
	some, err := f.client.GetAppointments(t.Context(), &teosv2.GetAppointmentsRequest{Locator: f.shared[:]})
	if err != nil || len(some.GetAppointments()) != 2 {
		t.Fatalf("GetAppointments = %d appointments, %v; want the 2 readable ones", len(some.GetAppointments()), err)
	}
	for _, method := range []string{"get_all_appointments", "get_appointments"} {
		logged := false
		for line := range strings.Lines(f.logs.String()) {
			logged = logged || strings.Contains(line, "unreadable records left out of the listing") && strings.Contains(line, "method="+method)
		}
		if !logged {
			t.Errorf("log does not report the record %s skipped:\n%s", method, f.logs)
		}
	}
	if !strings.Contains(f.logs.String(), "appointment 00ff") {
		t.Errorf("log does not name the skipped record:\n%s", f.logs)
	}
}
