package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

const (
	msgUnavailable      = "Service currently unavailable"
	msgInvalidUserID    = "Provided public key does not match expected format (33-byte compressed key)"
	msgAddUnauthorized  = "Invalid signature or user does not have enough slots available"
	msgGetUnauthorized  = "User cannot be authenticated"
	msgInfoUnauthorized = "User not found. Have you registered?"
	msgInvalidLocator   = "The provided locator does not match the expected format (16-byte hexadecimal string)"
	msgNoAppointment    = "The request has no appointment"
	testHeight          = 500
)

type acceptAll struct{}

func (acceptAll) BlockInChain(context.Context, chainhash.Hash) (bool, error) { return true, nil }

func (acceptAll) HandleBreach(_ context.Context, id teos.UUID, _, _ *wire.MsgTx) (*store.Tracker, error) {
	return &store.Tracker{UUID: id}, nil
}

type fixture struct {
	client    teosv2.PublicTowerServicesClient
	ext       teosv2.PublicTowerExtensionsClient
	store     *store.Store
	towerID   teos.UserID
	reachable *atomic.Bool
}

// newFixture serves PublicTowerServices over bufconn on a real store.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	towerKey := key("tower")
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: towerKey})
	reachable := &atomic.Bool{}
	reachable.Store(true)

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	public := grpcapi.NewPublic(w, reachable.Load, nil)
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
	return &fixture{
		client:    teosv2.NewPublicTowerServicesClient(conn),
		ext:       teosv2.NewPublicTowerExtensionsClient(conn),
		store:     db,
		towerID:   teos.UserIDFromPubKey(towerKey.PubKey()),
		reachable: reachable,
	}
}

func key(seed string) *btcec.PrivateKey {
	sum := sha256.Sum256([]byte(seed))
	k, _ := btcec.PrivKeyFromBytes(sum[:])
	return k
}

func wantStatus(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code || st.Message() != msg {
		t.Fatalf("got %v, want %s %q", err, code, msg)
	}
}

type call func(ctx context.Context, c teosv2.PublicTowerServicesClient) error

func register(req *commonv2.RegisterRequest) call {
	return func(ctx context.Context, c teosv2.PublicTowerServicesClient) error {
		_, err := c.Register(ctx, req)
		return err
	}
}

func add(req *commonv2.AddAppointmentRequest) call {
	return func(ctx context.Context, c teosv2.PublicTowerServicesClient) error {
		_, err := c.AddAppointment(ctx, req)
		return err
	}
}

func get(req *commonv2.GetAppointmentRequest) call {
	return func(ctx context.Context, c teosv2.PublicTowerServicesClient) error {
		_, err := c.GetAppointment(ctx, req)
		return err
	}
}

func info(req *commonv2.GetSubscriptionInfoRequest) call {
	return func(ctx context.Context, c teosv2.PublicTowerServicesClient) error {
		_, err := c.GetSubscriptionInfo(ctx, req)
		return err
	}
}

// TestMalformedRequests sends what the HTTP layer would never forward: the service must
// answer with a status, never panic or reach the store with bad values.
func TestMalformedRequests(t *testing.T) {
	f := newFixture(t)
	u := key("alice")
	uid := teos.UserIDFromPubKey(u.PubKey())
	if _, err := f.client.Register(t.Context(), &commonv2.RegisterRequest{UserId: uid[:]}); err != nil {
		t.Fatal(err)
	}
	loc16 := bytes.Repeat([]byte{0xab}, 16)
	validAdd := teos.Appointment{Locator: teos.Locator(loc16), EncryptedBlob: []byte{1}, ToSelfDelay: 42}
	goodSig := wtcrypto.SignMessage(validAdd.SignedBytes(), u)

	for _, tc := range []struct {
		name string
		call call
		code codes.Code
		msg  string
	}{
		{"register nil request", register(&commonv2.RegisterRequest{}), codes.InvalidArgument, msgInvalidUserID},
		{"register 32-byte id", register(&commonv2.RegisterRequest{UserId: uid[:32]}), codes.InvalidArgument, msgInvalidUserID},
		{"register 34-byte id", register(&commonv2.RegisterRequest{UserId: slices.Concat(uid[:], []byte{0})}), codes.InvalidArgument, msgInvalidUserID},
		{"register 65-byte uncompressed key", register(&commonv2.RegisterRequest{UserId: u.PubKey().SerializeUncompressed()}), codes.InvalidArgument, msgInvalidUserID},
		{"register prefix 04", register(&commonv2.RegisterRequest{UserId: slices.Concat([]byte{4}, uid[1:])}), codes.InvalidArgument, msgInvalidUserID},

		{"add empty request", add(&commonv2.AddAppointmentRequest{}), codes.InvalidArgument, msgNoAppointment},
		{"add nil appointment", add(&commonv2.AddAppointmentRequest{Signature: goodSig}), codes.InvalidArgument, msgNoAppointment},
		{"add empty appointment", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{}, Signature: goodSig}), codes.InvalidArgument, msgInvalidLocator},
		{"add 15-byte locator", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16[:15]}, Signature: goodSig}), codes.InvalidArgument, msgInvalidLocator},
		{"add 17-byte locator", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: slices.Concat(loc16, []byte{0})}, Signature: goodSig}), codes.InvalidArgument, msgInvalidLocator},
		{"add empty signature", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16, EncryptedBlob: []byte{1}, ToSelfDelay: 42}}), codes.Unauthenticated, msgAddUnauthorized},
		{"add huge signature", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16}, Signature: strings.Repeat("y", 1<<19)}), codes.Unauthenticated, msgAddUnauthorized},
		{"add signature with trailing bits", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16}, Signature: strings.Repeat("9", 104)}), codes.Unauthenticated, msgAddUnauthorized},
		{"add non-ASCII signature", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16}, Signature: "ÿÿÿ"}), codes.Unauthenticated, msgAddUnauthorized},
		{"add signature over other blob", add(&commonv2.AddAppointmentRequest{Appointment: &commonv2.Appointment{Locator: loc16, EncryptedBlob: []byte{2}, ToSelfDelay: 42}, Signature: goodSig}), codes.Unauthenticated, msgAddUnauthorized},

		{"get empty request", get(&commonv2.GetAppointmentRequest{}), codes.InvalidArgument, msgInvalidLocator},
		{"get 15-byte locator", get(&commonv2.GetAppointmentRequest{Locator: loc16[:15], Signature: goodSig}), codes.InvalidArgument, msgInvalidLocator},
		{"get 32-byte locator", get(&commonv2.GetAppointmentRequest{Locator: slices.Concat(loc16, loc16), Signature: goodSig}), codes.InvalidArgument, msgInvalidLocator},
		{"get empty signature", get(&commonv2.GetAppointmentRequest{Locator: loc16}), codes.Unauthenticated, msgGetUnauthorized},
		{"get user id as signature", get(&commonv2.GetAppointmentRequest{Locator: loc16, Signature: uid.String()}), codes.Unauthenticated, msgGetUnauthorized},

		{"info empty signature", info(&commonv2.GetSubscriptionInfoRequest{}), codes.Unauthenticated, msgInfoUnauthorized},
		{"info huge signature", info(&commonv2.GetSubscriptionInfoRequest{Signature: strings.Repeat("b", 1<<19)}), codes.Unauthenticated, msgInfoUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, tc.call(t.Context(), f.client), tc.code, tc.msg)
		})
	}
	users, appts, trackers, err := f.store.Counts()
	if err != nil || users != 1 || appts != 0 || trackers != 0 {
		t.Fatalf("store changed: %d users, %d appointments, %d trackers, err %v", users, appts, trackers, err)
	}
}

// TestUnreachableFirst: reachability is checked before anything else, whatever the request.
func TestUnreachableFirst(t *testing.T) {
	f := newFixture(t)
	f.reachable.Store(false)
	for name, c := range map[string]call{
		"register":              register(&commonv2.RegisterRequest{}),
		"add_appointment":       add(&commonv2.AddAppointmentRequest{}),
		"get_appointment":       get(&commonv2.GetAppointmentRequest{}),
		"get_subscription_info": info(&commonv2.GetSubscriptionInfoRequest{}),
	} {
		t.Run(name, func(t *testing.T) {
			wantStatus(t, c(t.Context(), f.client), codes.Unavailable, msgUnavailable)
		})
	}
}

// TestWireByteOrder: gRPC carries raw bytes, tracker txids in internal order (only the HTTP
// layer reverses them).
func TestWireByteOrder(t *testing.T) {
	f := newFixture(t)
	u := key("alice")
	uid := teos.UserIDFromPubKey(u.PubKey())
	reg, err := f.client.Register(t.Context(), &commonv2.RegisterRequest{UserId: uid[:]})
	if err != nil {
		t.Fatal(err)
	}
	receipt := teos.RegistrationReceipt{UserID: uid, AvailableSlots: reg.AvailableSlots, SubscriptionStart: reg.SubscriptionStart, SubscriptionExpiry: reg.SubscriptionExpiry}
	if !bytes.Equal(reg.UserId, uid[:]) || reg.AvailableSlots != 10 || reg.SubscriptionStart != testHeight || reg.SubscriptionExpiry != testHeight+100 ||
		!wtcrypto.VerifySignature(receipt.SignedBytes(), reg.SubscriptionSignature, f.towerID) {
		t.Fatalf("register reply %v", reg)
	}

	a := teos.Appointment{Locator: teos.Locator{1, 2, 3}, EncryptedBlob: []byte{9, 8}, ToSelfDelay: 7}
	sig := wtcrypto.SignMessage(a.SignedBytes(), u)
	acc, err := f.client.AddAppointment(t.Context(), &commonv2.AddAppointmentRequest{
		Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: a.ToSelfDelay},
		Signature:   sig,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(acc.Locator, a.Locator[:]) || acc.StartBlock != testHeight || acc.AvailableSlots != 9 ||
		!wtcrypto.VerifySignature(teos.AppointmentReceiptBytes(sig, testHeight), acc.Signature, f.towerID) {
		t.Fatalf("add reply %v", acc)
	}

	var dispute chainhash.Hash
	for i := range dispute {
		dispute[i] = byte(i)
	}
	penalty := chainhash.Hash{0xee}
	if err := f.store.PutTracker(&store.Tracker{UUID: teos.NewUUID(a.Locator, uid), DisputeTx: []byte{1}, PenaltyTx: []byte{2, 3},
		DisputeTxID: dispute, PenaltyTxID: penalty, Height: testHeight}); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.GetAppointment(t.Context(), &commonv2.GetAppointmentRequest{
		Locator:   a.Locator[:],
		Signature: wtcrypto.SignMessage(teos.GetAppointmentMessage(a.Locator), u),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := got.GetAppointmentData().GetTracker()
	if got.Status != commonv2.GetAppointmentResponse_DISPUTE_RESPONDED || tr == nil ||
		!bytes.Equal(tr.DisputeTxid, dispute[:]) || !bytes.Equal(tr.PenaltyTxid, penalty[:]) || !bytes.Equal(tr.PenaltyRawtx, []byte{2, 3}) {
		t.Fatalf("get reply %v", got)
	}

	si, err := f.client.GetSubscriptionInfo(t.Context(), &commonv2.GetSubscriptionInfoRequest{
		Signature: wtcrypto.SignMessage(teos.GetSubscriptionInfoMessage, u),
	})
	if err != nil {
		t.Fatal(err)
	}
	if si.AvailableSlots != 9 || si.SubscriptionExpiry != testHeight+100 || len(si.Locators) != 1 || !bytes.Equal(si.Locators[0], a.Locator[:]) {
		t.Fatalf("subscription info %v", si)
	}
}
