package lndtower

import (
	"sync"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"
)

// A second connection with the key of a connection being served is refused by wtserver and
// closed; that close must not make the served connection's address unknown, or its new
// session is charged to a budget shared by all such sessions instead of its address's.
func TestSessionRateDuplicateConnection(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tt := startTower(t, func(s *Server) { s.SessionsPerMinute = 1; s.clock = clock })

	if r := tt.createSessionFrom(t, newClientKey(t), anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeOK {
		t.Fatalf("session within the rate: code %d", r.Code)
	}
	// The address's budget is spent. The next client opens its session's connection, then a
	// second one with the same key, which the tower closes.
	key := newClientKey(t)
	served := tt.dialFrom(t, key, "127.0.0.1")
	dup, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: key},
		&lnwire.NetAddress{IdentityKey: tt.key.PubKey(), Address: tt.addr}, 5*time.Second, dialerFrom("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	if !(&client{t: t, key: key, conn: dup}).closed() {
		t.Fatal("second connection with a served key left open")
	}
	served.send(anchorSession(5))
	r, ok := served.recv().(*wtwire.CreateSessionReply)
	if !ok {
		t.Fatal("no CreateSessionReply")
	}
	if r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("session over the address's rate: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if tt.hasSession(t, key) {
		t.Fatal("session over the rate stored")
	}
}
