package lndtower

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/store"
)

// faultyRecords is a real store whose lnd calls fail before reaching it while down is set, as
// a full disk or a lost database connection does.
type faultyRecords struct {
	*store.Store
	down atomic.Bool
}

var errDown = fmt.Errorf("store: %w", syscall.EIO)

func (f *faultyRecords) LndSession(id store.LndSessionID) ([]byte, bool, error) {
	if f.down.Load() {
		return nil, false, errDown
	}
	return f.Store.LndSession(id)
}

func (f *faultyRecords) LndPutSession(id store.LndSessionID, rec []byte, check func([]byte) error) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.LndPutSession(id, rec, check)
}

func (f *faultyRecords) LndAddUpdate(id store.LndSessionID, hint store.LndHint, fn func([]byte) ([]byte, []byte, error)) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.LndAddUpdate(id, hint, fn)
}

func (f *faultyRecords) LndDeleteSession(id store.LndSessionID) (bool, error) {
	if f.down.Load() {
		return false, errDown
	}
	return f.Store.LndDeleteSession(id)
}

// A store fault is answered with lnd's temporary failure (40) on every message, never with a
// refusal of the session or the update (docs/LND.md), and the client's next try, once the
// store is back, is served: lnd's client keeps the update and sends it again.
func TestStoreFaultIsTemporaryFailure(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	recs := &faultyRecords{Store: s}
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTower{db: NewDB(recs, nil), key: key}
	ready := make(chan net.Addr, 1)
	srv := &Server{Bind: "127.0.0.1:0", Key: &keychain.PrivKeyECDH{PrivKey: key},
		ChainHash: *chaincfg.RegressionNetParams.GenesisHash, DB: tt.db, Ready: func(a net.Addr) { ready <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	tt.addr = <-ready

	client := newClientKey(t)
	recs.down.Store(true)
	if r := tt.createSession(t, client, anchorSession(10)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("CreateSession with the store down: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	recs.down.Store(false)
	if r := tt.createSession(t, client, anchorSession(10)); r.Code != wtwire.CodeOK {
		t.Fatalf("CreateSession again: code %d", r.Code)
	}

	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	u := update(t, 1, 0, size)
	recs.down.Store(true)
	c := tt.dial(t, client)
	if r := c.stateUpdate(u); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("StateUpdate with the store down: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if !c.closed() { // lnd's tower serves one connection per client: wait for it to hang up
		t.Fatal("connection left open after a failed update")
	}
	c = tt.dial(t, client)
	c.send(&wtwire.DeleteSession{})
	if r, ok := c.recv().(*wtwire.DeleteSessionReply); !ok || r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("DeleteSession with the store down: %+v, want code %d", r, wtwire.CodeTemporaryFailure)
	}
	if !c.closed() {
		t.Fatal("connection left open after DeleteSession")
	}

	recs.down.Store(false)
	c = tt.dial(t, client)
	if r := c.stateUpdate(u); r.Code != wtwire.CodeOK || r.LastApplied != 1 {
		t.Fatalf("StateUpdate again: code %d last applied %d", r.Code, r.LastApplied)
	}
	if tt.stored(t, u.Hint) != 1 {
		t.Fatal("update not stored")
	}
}
