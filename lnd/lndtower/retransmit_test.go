package lndtower

import (
	"testing"

	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"
)

// A state update sent again with the sequence number last applied (lnd's client resends a
// committed update whose reply it lost) is accepted with its hint, but must not add to what
// the session holds: a client resending it with a new hint each time stored any number of
// updates in a session of one, past max_stored_bytes, which only new sessions are checked
// against.
func TestResentUpdateDoesNotGrowTheSession(t *testing.T) {
	tt := startTower(t)
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(1)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	send := func(u *wtwire.StateUpdate) *wtwire.StateUpdateReply {
		t.Helper()
		u.IsComplete = 1 // the tower hangs up after the reply
		c := tt.dial(t, key)
		r := c.stateUpdate(u)
		if !c.closed() {
			t.Fatal("connection left open after the last update")
		}
		return r
	}
	first := update(t, 1, 0, size)
	if r := send(first); r.Code != wtwire.CodeOK || r.LastApplied != 1 {
		t.Fatalf("update 1: code %d last applied %d", r.Code, r.LastApplied)
	}
	// The reply lost: lnd's client sends the same update again, and is answered OK.
	again := *first
	if r := send(&again); r.Code != wtwire.CodeOK || r.LastApplied != 1 {
		t.Fatalf("update 1 resent: code %d last applied %d", r.Code, r.LastApplied)
	}
	for i := 0; i < 5; i++ {
		other := update(t, 1, 0, size) // seqnum 1 again, with a new hint
		if r := send(other); r.Code != wtwire.CodePermanentFailure {
			t.Fatalf("update 1 resent with another hint: code %d, want %d", r.Code, wtwire.CodePermanentFailure)
		}
		if tt.stored(t, other.Hint) != 0 {
			t.Fatal("update resent with another hint stored")
		}
	}
	sessions, updates, err := tt.db.Counts()
	if err != nil || sessions != 1 || updates != 1 {
		t.Fatalf("a session of 1 update holds %d updates (%d sessions, %v)", updates, sessions, err)
	}
	if tt.stored(t, first.Hint) != 1 {
		t.Fatal("the first update is gone")
	}
}
