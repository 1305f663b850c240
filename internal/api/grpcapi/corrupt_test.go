package grpcapi_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// An add whose user record no longer decodes (store.ErrCorrupt: bytes changed inside a
// readable page) is answered as one that reached a damaged page: DataLoss with MsgDamaged,
// which the HTTP edge makes error_code 7 (the CLN plugin keeps it pending), not Internal
// (255, which it files as invalid for good: the user lost the appointment for a fault of the
// tower's own). It is not held: the record does not heal while teosd runs. A batch item
// gets the same answer.
func TestAddForCorruptUserRecordIsSendAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	gkCfg := gatekeeper.Config{Store: db, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}
	public := grpcapi.NewPublic(watcher.New(watcher.Config{Store: db, Gatekeeper: gatekeeper.New(gkCfg, testHeight),
		Responder: acceptAll{}, TowerKey: key("tower")}), func() bool { return true }, nil)
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	if _, err := public.Register(t.Context(), &commonv2.RegisterRequest{UserId: userID[:]}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("users")).Put(userID[:], []byte{0xee, 1, 2}) // an unknown record version
	}); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = store.Open(path, nil)
	if err != nil {
		t.Fatalf("open with a corrupt user record: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	gkCfg.Store = db
	public = grpcapi.NewPublic(watcher.New(watcher.Config{Store: db, Gatekeeper: gatekeeper.New(gkCfg, testHeight),
		Responder: acceptAll{}, TowerKey: key("tower")}), func() bool { return true }, nil)
	gate, storeCond := hold.New(hold.Config{Bound: time.Hour}), hold.NewCondition("store", time.Millisecond)
	public.SetHold(grpcapi.Hold{Gate: gate, Bitcoind: hold.NewCondition("bitcoind", 0), Store: storeCond})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a held add would end here
	defer cancel()
	_, err = public.AddAppointment(ctx, holdAddRequest(t, "corrupt user"))
	if status.Code(err) != codes.DataLoss || status.Convert(err).Message() != grpcapi.MsgDamaged {
		t.Fatalf("add for a user whose record is corrupt: %v, want DataLoss %q", err, grpcapi.MsgDamaged)
	}
	resp, err := grpcapi.NewExtensions(public).AddAppointments(ctx, &teosv2.AddAppointmentsRequest{
		Appointments: []*commonv2.AddAppointmentRequest{holdAddRequest(t, "corrupt user 2")}})
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	if e := resp.GetResults()[0].GetError(); codes.Code(e.GetCode()) != codes.DataLoss || e.GetMessage() != grpcapi.MsgDamaged {
		t.Fatalf("batch item for a user whose record is corrupt: %v, want DataLoss %q", resp.GetResults()[0], grpcapi.MsgDamaged)
	}
	if !storeCond.IsUp() || gate.Held() != 0 {
		t.Errorf("store condition up %v, %d held: a corrupt record was held as a passing fault", storeCond.IsUp(), gate.Held())
	}
}
