package bitcoind_test

import (
	"testing"
	"time"

	"github.com/teos-go/teos/internal/bitcoind"
)

func TestSync(t *testing.T) {
	t.Parallel()
	// bitcoind's answer while it downloads the chain (fields as in Bitcoin Core 28).
	ibd := ok(`{"chain":"main","blocks":512000,"headers":870000,"bestblockhash":"00","initialblockdownload":true,"verificationprogress":0.4215,"pruned":false}`)
	// btcd has no initialblockdownload nor verificationprogress.
	btcd := ok(`{"chain":"regtest","blocks":110,"headers":110,"bestblockhash":"00","pruned":false}`)
	f := newFakeNode(t, ibd, btcd)
	c := f.client(t, 5*time.Second)
	got, err := c.Sync(t.Context())
	want := bitcoind.SyncState{InitialDownload: true, Blocks: 512000, Headers: 870000, Progress: 0.4215}
	if err != nil || got != want {
		t.Fatalf("Sync during IBD = %+v, %v; want %+v", got, err, want)
	}
	if req := f.lastRequest(t); req.Method != "getblockchaininfo" || len(req.Params) != 0 {
		t.Fatalf("request %+v", req)
	}
	got, err = c.Sync(t.Context())
	want = bitcoind.SyncState{Blocks: 110, Headers: 110}
	if err != nil || got != want {
		t.Fatalf("Sync on btcd's answer = %+v, %v; want %+v", got, err, want)
	}
}
