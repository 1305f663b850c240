package lndtower

import (
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"
)

// The reasons the store gives for a refusal (portMetrics.notes) are taken by the reply or
// dropped with the client's last connection: none is kept per refused message, also when the
// client hangs up without reading the reply.
func TestRefusalNotesAreNotKept(t *testing.T) {
	var srv *Server
	now := time.Unix(1_700_000_000, 0) // registration_rate never refills here
	tt := startTower(t, func(s *Server) {
		s.SessionsPerMinute, s.clock = 1, func() time.Time { return now }
		srv = s
	})
	// idle waits until every connection closed: each reply was written or failed by then,
	// and the tower holds no connection of a client key that dials again.
	idle := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for srv.met.lis.Load().Stats().Serving != 0 {
			if time.Now().After(deadline) {
				t.Fatal("connections still open after 30 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	used := newClientKey(t)
	if r := tt.createSession(t, used, anchorSession(2)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	for i := 0; i < 20; i++ {
		for _, m := range []struct {
			msg wtwire.Message
			own bool // the used session's key
		}{
			{msg: anchorSession(2)},                   // past registration_rate
			{msg: update(t, 1, 0, size)},              // unknown session
			{msg: update(t, 2, 0, size), own: true},   // out of order
			{msg: update(t, 1, 0, size-1), own: true}, // blob size
		} {
			key := newClientKey(t)
			if m.own {
				key = used
			}
			c := tt.dial(t, key)
			c.send(m.msg)
			if i%2 == 0 {
				c.conn.Close() // gone before the reply
				idle()
			} else if c.recv(); !c.closed() {
				t.Fatal("connection left open after a refusal")
			}
		}
	}
	idle()
	srv.met.mu.Lock()
	n := len(srv.met.notes)
	srv.met.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d refusal notes kept after every connection closed", n)
	}
}
