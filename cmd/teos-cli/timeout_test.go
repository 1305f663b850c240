package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	teosv2 "github.com/teos-go/teos/proto/teos/v2"
)

// hangingTower accepts the connection but answers get_tower_info only when the caller gives up.
type hangingTower struct{ *fakeTower }

func (h hangingTower) GetTowerInfo(ctx context.Context, _ *emptypb.Empty) (*teosv2.GetTowerInfoResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestNoAnswerSaysSo: a tower that takes the call but does not answer in time is reported as
// such, not with grpc-go's "context deadline exceeded".
func TestNoAnswerSaysSo(t *testing.T) {
	defer func(d time.Duration) { rpcTimeout = d }(rpcTimeout)
	rpcTimeout = 200 * time.Millisecond
	dir, port := serveFakeService(t, hangingTower{newFake(t)})
	code, out, errOut := runCLI("--datadir", dir, "--rpcport", strconv.Itoa(port), "gettowerinfo")
	if want := "teos-cli: the tower did not answer within 200ms\n"; code != 1 || out != "" || errOut != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
}
