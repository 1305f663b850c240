package grpcapi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// cutStream is a client that goes away as soon as it has read the first group's results.
type cutStream struct {
	grpc.ServerStream // unused
	ctx               context.Context
	cancel            context.CancelFunc
	got               []*teosv2.AddAppointmentsStreamResponse
}

func (c *cutStream) Send(m *teosv2.AddAppointmentsStreamResponse) error {
	c.got = append(c.got, m)
	c.cancel()
	return nil
}

func (c *cutStream) Context() context.Context { return c.ctx }

func TestAddAppointmentsStreamStopsWhenCut(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 10_000, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	w := watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: key("tower")})
	ext := grpcapi.NewExtensions(grpcapi.NewPublic(w, func() bool { return true }, nil))
	userKey := key("alice")
	if _, err := w.Register(userKey.PubKey().SerializeCompressed()); err != nil {
		t.Fatal(err)
	}
	const n = 5 * grpcapi.StreamGroup
	req := &teosv2.AddAppointmentsStreamRequest{}
	for i := range n {
		var loc teos.Locator
		copy(loc[:], fmt.Sprintf("loc-%012d", i))
		a := teos.Appointment{Locator: loc, EncryptedBlob: []byte{byte(i)}, ToSelfDelay: 42}
		req.Appointments = append(req.Appointments, &commonv2.AddAppointmentRequest{
			Appointment: &commonv2.Appointment{Locator: loc[:], EncryptedBlob: a.EncryptedBlob, ToSelfDelay: 42},
			Signature:   wtcrypto.SignMessage(a.SignedBytes(), userKey),
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := &cutStream{ctx: ctx, cancel: cancel}
	err = ext.AddAppointmentsStream(req, s)
	if st, _ := status.FromError(err); st.Code() != codes.Canceled {
		t.Fatalf("cut stream returned %v, want Canceled", err)
	}
	if len(s.got) != 1 || s.got[0].GetFirst() != 0 || len(s.got[0].GetResults()) != grpcapi.StreamGroup {
		t.Fatalf("sent %d messages, want the first group only", len(s.got))
	}
	for k, r := range s.got[0].GetResults() {
		if r.GetReceipt() == nil {
			t.Fatalf("item %d of the first group: %v", k, r)
		}
	}
	// The group that was answered is durable; the ones after the cut were never started.
	if _, stored, _, err := db.Counts(); err != nil || stored != grpcapi.StreamGroup {
		t.Fatalf("%d appointments stored (err %v), want the first group's %d", stored, err, grpcapi.StreamGroup)
	}
}
