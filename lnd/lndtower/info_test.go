package lndtower

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtpolicy"

	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/store"
)

// The front end tells the operator the address lnd users add, with the port the listener
// really got, and the stored counts.
func TestFrontEndInfo(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.BTCNetwork = "regtest"
	cfg.LndTowerBind = "127.0.0.1:0"
	inst, err := frontEnd{}.Open(t.Context(), frontend.Env{Config: &cfg, Store: s, TowerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(key.PubKey().SerializeCompressed())
	info, err := inst.Info()
	if err != nil || len(info.Addresses) != 1 || info.Addresses[0] != id+"@127.0.0.1:0" || info.Sessions != 0 {
		t.Fatalf("before listening: %+v, %v", info, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inst.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		if info, err = inst.Info(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(info.Addresses[0], ":0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bound address never showed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(info.Addresses[0], id+"@127.0.0.1:") {
		t.Fatalf("listening: %q", info.Addresses[0])
	}

	db := NewDB(s, nil)
	sid := addSession(t, db, testPolicy(5))
	if _, err := db.InsertStateUpdate(stateUpdate(t, sid, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if info, err = inst.Info(); err != nil || info.Sessions != 1 || info.StateUpdates != 1 || info.JusticeTxs != 0 {
		t.Fatalf("with a session: %+v, %v", info, err)
	}
}

func testPolicy(maxUpdates uint16) wtpolicy.Policy {
	p := wtpolicy.DefaultPolicy()
	p.BlobType = blob.TypeAltruistAnchorCommit
	p.MaxUpdates = maxUpdates
	return p
}

func stateUpdate(t *testing.T, id wtdb.SessionID, seq uint16, hintOf byte) *wtdb.SessionStateUpdate {
	t.Helper()
	txid := chainhash.Hash{hintOf}
	return &wtdb.SessionStateUpdate{
		ID: id, SeqNum: seq, LastApplied: seq - 1, Hint: blob.NewBreachHintFromHash(&txid),
		EncryptedBlob: make([]byte, blobSize(t, blob.TypeAltruistAnchorCommit)),
	}
}
