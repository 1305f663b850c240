package lndtower

import (
	"context"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// hookedBreacher calls during once, at the first breach the lookout hands over: after the
// block's matches were read, before the block's commit.
type hookedBreacher struct {
	breacher
	during func()
}

func (h *hookedBreacher) HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	if h.during != nil {
		h.during()
		h.during = nil
	}
	return h.breacher.HandleBreach(ctx, id, dispute, penalty)
}

// TestClientWritesDuringABlock: what lnd clients store while a block is being processed
// (between the lookout's read and the block's commit, and before the responder's commit)
// survives the block; the race the tower's own appointments had (a block deleting by UUID
// an appointment updated after it was read) has no counterpart here, since a block's commits
// write trackers only (store.Store.LndApplyChanges).
func TestClientWritesDuringABlock(t *testing.T) {
	db := openDB(t)
	bc := newBreach(t, blob.TypeAltruistAnchorCommit)
	txid := bc.commit.TxHash()
	hint := blob.NewBreachHintFromHash(&txid)
	s1, s2 := addSession(t, db, bc.policy), addSession(t, db, bc.policy)
	for _, id := range []wtdb.SessionID{s1, s2} { // the client backed the state up twice
		if _, err := db.InsertStateUpdate(&wtdb.SessionStateUpdate{ID: id, SeqNum: 1, Hint: hint, EncryptedBlob: bc.blob}); err != nil {
			t.Fatal(err)
		}
	}
	next := func(id wtdb.SessionID, seq uint16, of byte) blob.BreachHint {
		t.Helper()
		other := chainhash.Hash{of}
		u := &wtdb.SessionStateUpdate{ID: id, SeqNum: seq, LastApplied: seq - 1,
			Hint: blob.NewBreachHintFromHash(&other), EncryptedBlob: make([]byte, len(bc.blob))}
		if _, err := db.InsertStateUpdate(u); err != nil {
			t.Fatal(err)
		}
		return u.Hint
	}
	var (
		s3         wtdb.SessionID
		h2, h3, h4 blob.BreachHint
	)
	resp := &hookedBreacher{during: func() {
		// The client, answered while the block runs: s1's next state, s2 deleted, a new session.
		h2 = next(s1, 2, 0xa2)
		if err := db.DeleteSession(s2); err != nil {
			t.Error(err)
		}
		s3 = addSession(t, db, bc.policy)
		h3 = next(s3, 1, 0xa3)
	}}
	if err := NewLookout(db, resp, nil).BlockConnected(context.Background(), blockWith(bc.commit), 201); err != nil {
		t.Fatal(err)
	}
	// Both matches were read before s2 was deleted: the breach is answered for both (the
	// second justice would be refused by bitcoind as a double spend), as lnd's tower does.
	t1, t2 := trackerUUID(s1, hint), trackerUUID(s2, hint)
	if len(resp.ids) != 2 {
		t.Fatalf("%d breaches handed over, want 2", len(resp.ids))
	}
	for _, id := range []teos.UUID{t1, t2} {
		if _, err := db.Tracker(id); err != nil {
			t.Fatalf("tracker %s: %v", id, err)
		}
	}
	clientRecords := func(stage string, updates int) {
		t.Helper()
		if s, err := db.GetSessionInfo(&s1); err != nil || s.LastApplied != uint16(updates) {
			t.Fatalf("%s: session s1 = %+v, %v; want last applied %d", stage, s, err, updates)
		}
		if _, err := db.GetSessionInfo(&s2); !errors.Is(err, wtdb.ErrSessionNotFound) {
			t.Fatalf("%s: deleted session s2 = %v; want it still deleted", stage, err)
		}
		if _, err := db.GetSessionInfo(&s3); err != nil {
			t.Fatalf("%s: session s3: %v", stage, err)
		}
		hints := []blob.BreachHint{hint, h2, h3, h4}
		m, err := db.QueryMatches(hints)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != updates+1 {
			t.Fatalf("%s: %d stored updates match, want %d (s1's %d and s3's)", stage, len(m), updates+1, updates)
		}
		if s, u, err := db.Counts(); err != nil || s != 2 || u != updates+1 {
			t.Fatalf("%s: counts %d sessions, %d updates, %v; want 2, %d", stage, s, u, err, updates+1)
		}
	}
	clientRecords("after the lookout's commit", 2)

	// The responder's commit for a later block, with the Basis it always sets, after the
	// client stored s1's next state: trackers go, client records stay.
	h4 = next(s1, 3, 0xa4)
	err := db.ApplyChanges(&store.Changes{
		Completed: []teos.UUID{t1}, Untracked: []teos.UUID{t2},
		Basis: map[teos.UUID]store.Basis{t1: {Tracked: true}, t2: {Tracked: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []teos.UUID{t1, t2} {
		if _, err := db.Tracker(id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tracker %s after the responder's commit: %v", id, err)
		}
	}
	clientRecords("after the responder's commit", 3)
}
