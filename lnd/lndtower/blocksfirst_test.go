package lndtower

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/blockfirst"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
	"github.com/teos-go/teos/internal/store"
)

// openedTower serves the front end as teosd opens it, with gate as Env.BlocksFirst, on a
// free loopback port until the test ends.
func openedTower(t *testing.T, gate *blockfirst.Gate) *testTower {
	t.Helper()
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
	inst, err := frontEnd{}.Open(t.Context(), frontend.Env{Config: &cfg, Store: s, TowerKey: key, BlocksFirst: gate})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inst.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	tt := &testTower{db: NewDB(s, nil), key: key}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		info, err := inst.Info()
		if err != nil {
			t.Fatal(err)
		}
		if a := info.Addresses[0]; !strings.HasSuffix(a, ":0") {
			tt.addr, err = net.ResolveTCPAddr("tcp", a[strings.Index(a, "@")+1:])
			if err != nil {
				t.Fatal(err)
			}
			return tt
		}
		if time.Now().After(deadline) {
			t.Fatal("the front end never listened")
		}
	}
}

// waitParked waits until n requests are waiting at g.
func waitParked(t *testing.T, g *blockfirst.Gate, n int64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); g.Snapshot().Waiting != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests waiting at the blocks-first gate, want %d", g.Snapshot().Waiting, n)
		}
	}
}

// While a block is processed, an lnd client's CreateSession, StateUpdate and DeleteSession
// wait at the tower's blocks-first gate before their store work, and are answered once the
// block is done; Init is answered at once, and with no block a request does not wait.
func TestRequestsWaitForTheBlock(t *testing.T) {
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	for _, tc := range []struct {
		name    string
		session bool                                                                              // created before the block
		req     func(t *testing.T) wtwire.Message                                                 // sent while the block is processed
		done    func(t *testing.T, tt *testTower, key *btcec.PrivateKey, req wtwire.Message) bool // its store work happened
		reply   func(m wtwire.Message) wtwire.ErrorCode
	}{
		{
			name: "CreateSession",
			req:  func(*testing.T) wtwire.Message { return anchorSession(5) },
			done: func(_ *testing.T, tt *testTower, key *btcec.PrivateKey, _ wtwire.Message) bool {
				id := wtdb.NewSessionIDFromPubKey(key.PubKey())
				_, err := tt.db.GetSessionInfo(&id)
				return err == nil
			},
			reply: func(m wtwire.Message) wtwire.ErrorCode { return m.(*wtwire.CreateSessionReply).Code },
		},
		{
			name: "StateUpdate", session: true,
			req: func(t *testing.T) wtwire.Message { return update(t, 1, 0, size) },
			done: func(t *testing.T, tt *testTower, _ *btcec.PrivateKey, req wtwire.Message) bool {
				return tt.stored(t, req.(*wtwire.StateUpdate).Hint) == 1
			},
			reply: func(m wtwire.Message) wtwire.ErrorCode { return m.(*wtwire.StateUpdateReply).Code },
		},
		{
			name: "DeleteSession", session: true,
			req: func(*testing.T) wtwire.Message { return &wtwire.DeleteSession{} },
			done: func(_ *testing.T, tt *testTower, key *btcec.PrivateKey, _ wtwire.Message) bool {
				id := wtdb.NewSessionIDFromPubKey(key.PubKey())
				_, err := tt.db.GetSessionInfo(&id)
				return err != nil
			},
			reply: func(m wtwire.Message) wtwire.ErrorCode { return m.(*wtwire.DeleteSessionReply).Code },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := blockfirst.New(time.Hour) // a wait that ran to the bound would hang the test
			tt := openedTower(t, g)
			key := newClientKey(t)
			if tc.session {
				if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CodeOK {
					t.Fatalf("create session: code %d", r.Code)
				}
				if s := g.Snapshot(); s.Waits != 0 {
					t.Fatalf("a CreateSession with no block in progress waited: %+v", s)
				}
			}
			g.Begin()
			c := tt.dial(t, key) // Init is answered while the block is processed
			req := tc.req(t)
			c.send(req)
			waitParked(t, g, 1)
			if tc.done(t, tt, key, req) {
				t.Fatal("the request's store work ran while a block was processed")
			}
			g.End()
			if code := tc.reply(c.recv()); code != wtwire.CodeOK {
				t.Fatalf("answered %d after the block, want OK", code)
			}
			if !tc.done(t, tt, key, req) {
				t.Fatal("the request's store work did not run after the block")
			}
			if s := g.Snapshot(); s.Waits != 1 || s.Bounded != 0 || s.Waiting != 0 {
				t.Fatalf("gate after the block: %+v, want one wait, not bounded, none waiting", s)
			}
		})
	}
}

// A block longer than the gate's bound delays an update, never refuses it.
func TestUpdateGoesAheadAtTheBound(t *testing.T) {
	g := blockfirst.New(20 * time.Millisecond)
	tt := startTower(t, func(s *Server) { s.BlocksFirst = g })
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	g.Begin()
	defer g.End()
	u := update(t, 1, 0, blobSize(t, blob.TypeAltruistAnchorCommit))
	if r := tt.dial(t, key).stateUpdate(u); r.Code != wtwire.CodeOK {
		t.Fatalf("update during a long block: code %d, want OK", r.Code)
	}
	if tt.stored(t, u.Hint) != 1 {
		t.Fatal("update not stored")
	}
	if s := g.Snapshot(); s.Bounded != 1 {
		t.Fatalf("gate: %+v, want the update's wait cut at the bound", s)
	}
}

// The wait ends at the read deadline wtserver set for the message (the bound here is far
// past it): the update is then served, while the block is still processed.
func TestWaitEndsAtTheReadDeadline(t *testing.T) {
	g := blockfirst.New(time.Hour)
	tt := startTower(t, func(s *Server) { s.BlocksFirst, s.readTimeout = g, 3*time.Second })
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	g.Begin()
	defer g.End()
	u := update(t, 1, 0, blobSize(t, blob.TypeAltruistAnchorCommit))
	if r := tt.dial(t, key).stateUpdate(u); r.Code != wtwire.CodeOK { // recv allows 10 s
		t.Fatalf("update: code %d, want OK", r.Code)
	}
	if s := g.Snapshot(); s.Waits != 1 || s.Bounded != 0 {
		t.Fatalf("gate: %+v, want one wait ended by the deadline", s)
	}
}

// A tower stopping while an update waits for a block drops it unanswered (the client sends it
// again): it neither keeps Serve from returning until the bound nor is stored after the stop.
func TestStopEndsTheWait(t *testing.T) {
	g := blockfirst.New(time.Hour)
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTower{db: openDB(t), key: key}
	stop := tt.start(t, func(s *Server) { s.BlocksFirst = g })
	client := newClientKey(t)
	if r := tt.createSession(t, client, anchorSession(5)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	g.Begin()
	defer g.End()
	c := tt.dial(t, client)
	u := update(t, 1, 0, blobSize(t, blob.TypeAltruistAnchorCommit))
	c.send(u)
	waitParked(t, g, 1)
	stop() // returns once Serve has
	if tt.stored(t, u.Hint) != 0 {
		t.Fatal("an update waiting when the tower stopped was stored")
	}
	if !c.closed() {
		t.Fatal("connection left open by a stopped tower")
	}
	if s := g.Snapshot(); s.Waiting != 0 || s.Bounded != 0 {
		t.Fatalf("gate after the stop: %+v", s)
	}
}
