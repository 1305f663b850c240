package grpcapi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/gatekeeper"
	"github.com/teos-go/teos/internal/hold"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/damagetest"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	commonv2 "github.com/teos-go/teos/proto/common/teos/v2"
)

// An add whose user record sits on a damaged page of a real bbolt file is answered DataLoss
// with MsgDamaged (the HTTP edge makes it error_code 7, which the CLN plugin keeps pending),
// not Internal (255, which it files as invalid for good), and is not held: the damage does
// not heal while teosd runs.
func TestAddOnDamagedUserPageIsSendAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	gk := gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	public := grpcapi.NewPublic(watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: key("tower")}),
		func() bool { return true }, nil)
	userID := teos.UserIDFromPubKey(key("user").PubKey())
	// Enough users that the users bucket has leaf pages of its own (a small one is inline in
	// the root page, whose damage fails Open instead).
	for i := range 300 {
		id := teos.UserIDFromPubKey(key(fmt.Sprint("other ", i)).PubKey())
		if i == 150 {
			id = userID
		}
		if _, err := public.Register(t.Context(), &commonv2.RegisterRequest{UserId: id[:]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	damagetest.ZeroPageHolding(t, path, userID[:], "users")

	db, err = store.Open(path, nil)
	if err != nil {
		t.Fatalf("open with a damaged users page: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	gk = gatekeeper.New(gatekeeper.Config{Store: db, SubscriptionSlots: 10, SubscriptionDuration: 100, ExpiryDelta: 6}, testHeight)
	public = grpcapi.NewPublic(watcher.New(watcher.Config{Store: db, Gatekeeper: gk, Responder: acceptAll{}, TowerKey: key("tower")}),
		func() bool { return true }, nil)
	gate, storeCond := hold.New(hold.Config{Bound: time.Hour}), hold.NewCondition("store", time.Millisecond)
	public.SetHold(grpcapi.Hold{Gate: gate, Bitcoind: hold.NewCondition("bitcoind", 0), Store: storeCond})

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a held add would end here
	defer cancel()
	_, err = public.AddAppointment(ctx, holdAddRequest(t, "on the damaged page"))
	if status.Code(err) != codes.DataLoss || status.Convert(err).Message() != grpcapi.MsgDamaged {
		t.Fatalf("add for a user on a damaged page: %v, want DataLoss %q", err, grpcapi.MsgDamaged)
	}
	if !storeCond.IsUp() || gate.Held() != 0 {
		t.Errorf("store condition up %v, %d held: a damaged read was held as a passing fault", storeCond.IsUp(), gate.Held())
	}
}
