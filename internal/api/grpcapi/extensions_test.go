package grpcapi_test

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

func signedRequest(sk string, loc byte, blob []byte) *commonv2.AddAppointmentRequest {
	a := teos.Appointment{Locator: teos.Locator{loc}, EncryptedBlob: blob, ToSelfDelay: 42}
	return &commonv2.AddAppointmentRequest{
		Appointment: &commonv2.Appointment{Locator: a.Locator[:], EncryptedBlob: blob, ToSelfDelay: 42},
		Signature:   wtcrypto.SignMessage(a.SignedBytes(), key(sk)),
	}
}

// Every item of a batch must answer what add_appointment answers for it alone.
func TestAddAppointmentsMatchesAddAppointment(t *testing.T) {
	batch, single := newFixture(t), newFixture(t)
	for _, f := range []*fixture{batch, single} {
		for _, u := range []string{"alice", "bob"} {
			uid := teos.UserIDFromPubKey(key(u).PubKey())
			if _, err := f.client.Register(t.Context(), &commonv2.RegisterRequest{UserId: uid[:]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	big := bytes.Repeat([]byte{1}, 9*teos.EncryptedBlobMaxSize) // 9 of alice's 10 slots
	reqs := []*commonv2.AddAppointmentRequest{
		signedRequest("alice", 1, big),
		{}, // no appointment
		{Appointment: &commonv2.Appointment{Locator: []byte{1}}}, // bad locator
		signedRequest("alice", 2, []byte{1}),                     // last slot
		signedRequest("alice", 3, []byte{1}),                     // no slots left
		signedRequest("mallory", 4, []byte{1}),                   // not registered
		signedRequest("bob", 1, []byte{1}),
		signedRequest("alice", 2, []byte{2}), // update: free
	}
	resp, err := batch.ext.AddAppointments(t.Context(), &teosv2.AddAppointmentsRequest{Appointments: reqs})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(reqs) {
		t.Fatalf("%d results for %d items", len(resp.GetResults()), len(reqs))
	}
	for i, req := range reqs {
		want, wantErr := single.client.AddAppointment(t.Context(), req)
		got := resp.GetResults()[i]
		if wantErr != nil {
			wantStatus(t, wantErr, codes.Code(got.GetError().GetCode()), got.GetError().GetMessage())
			if got.GetReceipt() != nil {
				t.Fatalf("item %d: receipt and error", i)
			}
			continue
		}
		if !proto.Equal(got.GetReceipt(), want) {
			t.Fatalf("item %d: batch %v, single %v", i, got, want)
		}
	}
	if got := resp.GetResults()[4].GetError(); got.GetCode() != uint32(codes.Unauthenticated) || got.GetMessage() != msgAddUnauthorized {
		t.Fatalf("no-slots item = %v", got)
	}
}

func TestAddAppointmentsWholeRequestErrors(t *testing.T) {
	f := newFixture(t)
	_, err := f.ext.AddAppointments(t.Context(), &teosv2.AddAppointmentsRequest{})
	wantStatus(t, err, codes.InvalidArgument, "A batch holds 1 to 1000 appointments, got 0")
	many := make([]*commonv2.AddAppointmentRequest, 1001)
	_, err = f.ext.AddAppointments(t.Context(), &teosv2.AddAppointmentsRequest{Appointments: many})
	wantStatus(t, err, codes.InvalidArgument, "A batch holds 1 to 1000 appointments, got 1001")
	f.reachable.Store(false)
	_, err = f.ext.AddAppointments(t.Context(), &teosv2.AddAppointmentsRequest{Appointments: many[:1]})
	wantStatus(t, err, codes.Unavailable, msgUnavailable)

	// get_info answers even while bitcoind is unreachable.
	info, err := f.ext.GetInfo(t.Context(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.GetTowerId(), f.towerID[:]) || info.GetVersion() != teos.Version ||
		!slices.Equal(info.GetExtensions(), []string{"add_appointments", "delete_appointment", "add_appointments_compressed", "add_appointments_stream"}) {
		t.Fatalf("info = %v", info)
	}
}
