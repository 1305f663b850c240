package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// teosCLIBin builds the main module's teos-cli once, next to teosd.
var teosCLIBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "teos-cli")
	return bin, run(repo, "go", "build", "-o", bin, "./cmd/teos-cli")
})

// towerInfo is what `teos-cli gettowerinfo` prints of the tower's front ends.
type towerInfo struct {
	TowerID   string `json:"tower_id"`
	Role      string `json:"role"`
	FrontEnds []struct {
		Name         string   `json:"name"`
		Addresses    []string `json:"addresses"`
		Sessions     uint64   `json:"sessions"`
		StateUpdates uint64   `json:"state_updates"`
		JusticeTxs   uint64   `json:"justice_txs"`
	} `json:"front_ends"`
}

// towerInfo runs `teos-cli gettowerinfo` against tw.
func (tw *teosd) towerInfo(t testing.TB) towerInfo {
	t.Helper()
	bin, err := teosCLIBin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--datadir", tw.dataDir, "--rpcport", tw.rpcPort, "gettowerinfo")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("teos-cli gettowerinfo: %v\n%s", err, errb.String())
	}
	var info towerInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("teos-cli gettowerinfo: %v\n%s", err, out.String())
	}
	return info
}

// lndFrontEnd checks the tower reports exactly its lnd front end, at the address lnd users
// add, and returns its counts.
func (tw *teosd) lndFrontEnd(t testing.TB) (sessions, updates, justice uint64) {
	t.Helper()
	info := tw.towerInfo(t)
	if info.TowerID != tw.id || info.Role == "" || len(info.FrontEnds) != 1 {
		t.Fatalf("gettowerinfo: %+v", info)
	}
	fe := info.FrontEnds[0]
	if fe.Name != "lnd" || len(fe.Addresses) != 1 || fe.Addresses[0] != tw.id+"@"+tw.lndAddr {
		t.Fatalf("gettowerinfo's lnd front end: %+v, want address %s@%s", fe, tw.id, tw.lndAddr)
	}
	return fe.Sessions, fe.StateUpdates, fe.JusticeTxs
}
