package grpcapi_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/teos-go/teos/internal/api/grpcapi"
	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// An instance sharing a database says whether it leads and who does, as the hook tells it at
// the time of the call.
func TestPrivateGetTowerInfoLeadership(t *testing.T) {
	var (
		mu  sync.Mutex
		cur grpcapi.Leadership
	)
	f := newPrivFixture(t, func(c *grpcapi.PrivateConfig) {
		c.Leadership = func() grpcapi.Leadership { mu.Lock(); defer mu.Unlock(); return cur }
	})
	for _, tc := range []struct {
		l    grpcapi.Leadership
		want teosv2.TowerRole
	}{
		{grpcapi.Leadership{Leading: true, Instance: "a", Leader: "a"}, teosv2.TowerRole_TOWER_ROLE_LEADER},
		{grpcapi.Leadership{Instance: "b", Leader: "a"}, teosv2.TowerRole_TOWER_ROLE_FOLLOWER},
		{grpcapi.Leadership{Instance: "b"}, teosv2.TowerRole_TOWER_ROLE_FOLLOWER}, // nobody leads right now
	} {
		mu.Lock()
		cur = tc.l
		mu.Unlock()
		info, err := f.client.GetTowerInfo(t.Context(), &emptypb.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetRole() != tc.want || info.GetInstance() != tc.l.Instance || info.GetLeader() != tc.l.Leader {
			t.Fatalf("%+v: role %v, instance %q, leader %q", tc.l, info.GetRole(), info.GetInstance(), info.GetLeader())
		}
		if info.GetNRegisteredUsers() != 2 || len(info.GetFrontEnds()) != 0 {
			t.Fatalf("the rest of the answer changed: %v", info)
		}
	}
}

func TestPrivateGetTowerInfoFrontEnds(t *testing.T) {
	lnd := grpcapi.FrontEnd{Name: "lnd", Addresses: []string{"02ab@127.0.0.1:9911"}, Sessions: 3, StateUpdates: 40, JusticeTxs: 1}
	f := newPrivFixture(t, func(c *grpcapi.PrivateConfig) {
		c.FrontEnds = func() ([]grpcapi.FrontEnd, error) { return []grpcapi.FrontEnd{lnd}, nil }
	})
	info, err := f.client.GetTowerInfo(t.Context(), &emptypb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*teosv2.FrontEndInfo{{Name: "lnd", Addresses: []string{"02ab@127.0.0.1:9911"}, Sessions: 3, StateUpdates: 40, JusticeTxs: 1}}
	if len(info.GetFrontEnds()) != 1 || !proto.Equal(info.GetFrontEnds()[0], want[0]) {
		t.Fatalf("front ends %v, want %v", info.GetFrontEnds(), want)
	}
	if info.GetRole() != teosv2.TowerRole_TOWER_ROLE_STANDALONE || info.GetInstance() != "" || info.GetLeader() != "" {
		t.Fatalf("a standalone tower: %v", info)
	}
}

// A front end whose counts cannot be read fails the call like the tower's own counts: an
// internal error, the cause in the log only.
func TestPrivateGetTowerInfoFrontEndFailure(t *testing.T) {
	f := newPrivFixture(t, func(c *grpcapi.PrivateConfig) {
		c.FrontEnds = func() ([]grpcapi.FrontEnd, error) { return nil, errors.New("lnd counts: disk on fire") }
	})
	_, err := f.client.GetTowerInfo(t.Context(), &emptypb.Empty{})
	privCheckStatus(t, "get_tower_info with a failing front end", err, codes.Internal, "internal error")
	if !strings.Contains(f.logs.String(), "disk on fire") {
		t.Fatalf("cause not logged:\n%s", f.logs)
	}
}
