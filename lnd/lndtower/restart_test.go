package lndtower

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/store"
)

// teosd stopped while an lnd client is connected in the middle of its updates, then started
// again on the same database file: every update acknowledged is still there, the session goes
// on from its last applied number, and the update that was in flight when the tower stopped
// (stored or not, the client cannot tell) is accepted when the client sends it again.
func TestRestartWithClientConnected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	open := func() *store.Store {
		s, err := store.Open(path, &store.Options{}) // fsync on, as teosd runs
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTower{db: NewDB(s, nil), key: key}
	stop := tt.start(t)
	client := newClientKey(t)
	if r := tt.createSession(t, client, anchorSession(10)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	c := tt.dial(t, client)
	var acked []blob.BreachHint
	for seq := uint16(1); seq <= 3; seq++ {
		u := update(t, seq, seq-1, size)
		if r := c.stateUpdate(u); r.Code != wtwire.CodeOK || r.LastApplied != seq {
			t.Fatalf("update %d: code %d last applied %d", seq, r.Code, r.LastApplied)
		}
		acked = append(acked, u.Hint)
	}
	inFlight := update(t, 4, 3, size)
	c.send(inFlight) // no reply awaited: the tower stops now
	stop()
	// The tower may have answered the update before it stopped (the test goroutine late on a
	// loaded machine); the close follows that reply.
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if b, err := c.conn.ReadNextMessage(); err == nil {
		m, err := wtwire.ReadMessage(bytes.NewReader(b), 0)
		if r, ok := m.(*wtwire.StateUpdateReply); err != nil || !ok || r.Code != wtwire.CodeOK || r.LastApplied != 4 {
			t.Fatalf("before the close: %T %+v (%v), want update 4's OK", m, m, err)
		}
		if !c.closed() {
			t.Fatal("client connection left open by a stopped tower")
		}
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("client connection left open by a stopped tower")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	t.Cleanup(func() { s.Close() })
	tt.db = NewDB(s, nil)
	tt.start(t)
	for i, h := range acked {
		if tt.stored(t, h) != 1 {
			t.Fatalf("acknowledged update %d lost across the restart", i+1)
		}
	}
	c = tt.dial(t, client)
	if r := c.stateUpdate(inFlight); r.Code != wtwire.CodeOK || r.LastApplied != 4 {
		t.Fatalf("update 4 sent again: code %d last applied %d", r.Code, r.LastApplied)
	}
	u := update(t, 5, 4, size)
	u.IsComplete = 1
	if r := c.stateUpdate(u); r.Code != wtwire.CodeOK || r.LastApplied != 5 {
		t.Fatalf("update 5: code %d last applied %d", r.Code, r.LastApplied)
	}
	if sessions, updates, err := tt.db.Counts(); err != nil || sessions != 1 || updates != 5 {
		t.Fatalf("counts: %d sessions, %d updates, %v", sessions, updates, err)
	}
}
