package lndtower

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwallet/chainfee"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// pgDatabase, while set (TestOnPostgres), makes openDB use a fresh PostgreSQL database.
var pgDatabase func(t testing.TB) string

func openDB(t *testing.T) *DB {
	t.Helper()
	if pgDatabase != nil {
		s, err := pgstore.Open(context.Background(), pgDatabase(t), &pgstore.Options{Network: "regtest"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return NewDB(s, nil)
	}
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return NewDB(s, nil)
}

type testTower struct {
	db   *DB
	key  *btcec.PrivateKey
	addr net.Addr
}

// startTower serves a tower on a free loopback port until the test ends; opts adjust the
// server before it starts.
func startTower(t *testing.T, opts ...func(*Server)) *testTower {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTower{db: openDB(t), key: key}
	tt.start(t, opts...)
	return tt
}

// start serves tt's database with tt's key on a new loopback port (tt.addr) until stop is
// called or the test ends.
func (tt *testTower) start(t *testing.T, opts ...func(*Server)) (stop func()) {
	t.Helper()
	ready := make(chan net.Addr, 1)
	srv := &Server{
		Bind: "127.0.0.1:0", Key: &keychain.PrivKeyECDH{PrivKey: tt.key},
		ChainHash: *chaincfg.RegressionNetParams.GenesisHash, DB: tt.db,
		Ready: func(a net.Addr) { ready <- a },
	}
	for _, o := range opts {
		o(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(stop)
	select {
	case tt.addr = <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return stop
}

// client is one lnd-like client connection; its key is its session id.
type client struct {
	t    *testing.T
	key  *btcec.PrivateKey
	conn *brontide.Conn
}

func newClientKey(t *testing.T) *btcec.PrivateKey {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (tt *testTower) dial(t *testing.T, key *btcec.PrivateKey) *client {
	t.Helper()
	return tt.dialFrom(t, key, "")
}

// dialFrom is dial from the local address from ("" lets the system choose), e.g. 127.0.0.2
// to be another client address on loopback.
func (tt *testTower) dialFrom(t *testing.T, key *btcec.PrivateKey, from string) *client {
	t.Helper()
	conn, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: key},
		&lnwire.NetAddress{IdentityKey: tt.key.PubKey(), Address: tt.addr}, 5*time.Second, dialerFrom(from))
	if err != nil {
		t.Fatalf("dial tower: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, key: key, conn: conn}
	c.send(wtwire.NewInitMessage(lnwire.NewRawFeatureVector(wtwire.AltruistSessionsRequired),
		*chaincfg.RegressionNetParams.GenesisHash))
	if _, ok := c.recv().(*wtwire.Init); !ok {
		t.Fatal("tower did not answer Init with Init")
	}
	return c
}

func (c *client) send(m wtwire.Message) {
	c.t.Helper()
	var buf bytes.Buffer
	if _, err := wtwire.WriteMessage(&buf, m, 0); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() wtwire.Message {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.conn.ReadNextMessage()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	m, err := wtwire.ReadMessage(bytes.NewReader(b), 0)
	if err != nil {
		c.t.Fatalf("decode reply: %v", err)
	}
	return m
}

// closed reports whether the tower closed the connection (read fails, no message).
func (c *client) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.ReadNextMessage()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func (tt *testTower) createSession(t *testing.T, key *btcec.PrivateKey, req *wtwire.CreateSession) *wtwire.CreateSessionReply {
	t.Helper()
	c := tt.dial(t, key)
	c.send(req)
	r, ok := c.recv().(*wtwire.CreateSessionReply)
	if !ok {
		t.Fatal("no CreateSessionReply")
	}
	// lnd's tower serves one connection per client key: wait for it to hang up this one.
	if !c.closed() {
		t.Fatal("connection left open after CreateSession")
	}
	return r
}

func anchorSession(maxUpdates uint16) *wtwire.CreateSession {
	return &wtwire.CreateSession{
		BlobType: blob.TypeAltruistAnchorCommit, MaxUpdates: maxUpdates,
		SweepFeeRate: chainfee.SatPerKWeight(2500),
	}
}

func blobSize(t *testing.T, bt blob.Type) int {
	t.Helper()
	ct, err := bt.CommitmentType(nil)
	if err != nil {
		t.Fatal(err)
	}
	kit, err := ct.EmptyJusticeKit()
	if err != nil {
		t.Fatal(err)
	}
	return blob.Size(kit)
}

func update(t *testing.T, seq, lastApplied uint16, size int) *wtwire.StateUpdate {
	t.Helper()
	u := &wtwire.StateUpdate{SeqNum: seq, LastApplied: lastApplied, EncryptedBlob: make([]byte, size)}
	if _, err := rand.Read(u.Hint[:]); err != nil {
		t.Fatal(err)
	}
	rand.Read(u.EncryptedBlob)
	return u
}

func (c *client) stateUpdate(u *wtwire.StateUpdate) *wtwire.StateUpdateReply {
	c.t.Helper()
	c.send(u)
	r, ok := c.recv().(*wtwire.StateUpdateReply)
	if !ok {
		c.t.Fatal("no StateUpdateReply")
	}
	return r
}

func (tt *testTower) stored(t *testing.T, hint blob.BreachHint) int {
	t.Helper()
	m, err := tt.db.QueryMatches([]blob.BreachHint{hint})
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestCreateSessionPolicies(t *testing.T) {
	tt := startTower(t)
	for _, tc := range []struct {
		name string
		req  *wtwire.CreateSession
		want wtwire.ErrorCode
	}{
		{"anchor altruist", anchorSession(10), wtwire.CodeOK},
		{"legacy altruist", &wtwire.CreateSession{BlobType: blob.TypeAltruistCommit, MaxUpdates: 10, SweepFeeRate: 2500}, wtwire.CodeOK},
		{"reward session (not offered, as lnd's tower)", &wtwire.CreateSession{BlobType: blob.TypeRewardCommit, MaxUpdates: 10, RewardRate: 10000, SweepFeeRate: 2500}, wtwire.CreateSessionCodeRejectBlobType},
		{"unknown blob type", &wtwire.CreateSession{BlobType: blob.Type(1 << 10), MaxUpdates: 10, SweepFeeRate: 2500}, wtwire.CreateSessionCodeRejectBlobType},
		{"policy that does not validate (max updates 0)", anchorSession(0), wtwire.CodeTemporaryFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newClientKey(t)
			r := tt.createSession(t, key, tc.req)
			if r.Code != tc.want {
				t.Fatalf("code %d, want %d", r.Code, tc.want)
			}
			id := wtdb.NewSessionIDFromPubKey(key.PubKey())
			_, err := tt.db.GetSessionInfo(&id)
			if stored := err == nil; stored != (tc.want == wtwire.CodeOK) {
				t.Fatalf("session stored %v after code %d (err %v)", stored, r.Code, err)
			}
		})
	}
}

func TestStateUpdates(t *testing.T) {
	tt := startTower(t)
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(3)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	size := blobSize(t, blob.TypeAltruistAnchorCommit)

	c := tt.dial(t, key)
	u1 := update(t, 1, 0, size)
	if r := c.stateUpdate(u1); r.Code != wtwire.CodeOK || r.LastApplied != 1 {
		t.Fatalf("update 1: code %d last applied %d", r.Code, r.LastApplied)
	}
	if tt.stored(t, u1.Hint) != 1 {
		t.Fatal("accepted update not stored")
	}

	// Out of order: 3 after 1. lnd's tower answers 72 and hangs up.
	u3 := update(t, 3, 1, size)
	if r := c.stateUpdate(u3); r.Code != wtwire.StateUpdateCodeSeqNumOutOfOrder {
		t.Fatalf("out-of-order update: code %d, want %d", r.Code, wtwire.StateUpdateCodeSeqNumOutOfOrder)
	}
	if !c.closed() {
		t.Fatal("connection left open after a refused update")
	}
	if tt.stored(t, u3.Hint) != 0 {
		t.Fatal("refused update stored")
	}

	// Wrong blob sizes, short and oversized: lnd's tower answers a temporary failure and
	// hangs up.
	for _, n := range []int{size - 1, 60000} {
		c = tt.dial(t, key)
		bad := update(t, 2, 1, n)
		if r := c.stateUpdate(bad); r.Code != wtwire.CodeTemporaryFailure {
			t.Fatalf("blob of %d bytes: code %d, want %d", n, r.Code, wtwire.CodeTemporaryFailure)
		}
		if !c.closed() {
			t.Fatal("connection left open after a refused update")
		}
		if tt.stored(t, bad.Hint) != 0 {
			t.Fatalf("update with a blob of %d bytes stored", n)
		}
	}

	c = tt.dial(t, key)
	for seq := uint16(2); seq <= 3; seq++ {
		if r := c.stateUpdate(update(t, seq, seq-1, size)); r.Code != wtwire.CodeOK || r.LastApplied != seq {
			t.Fatalf("update %d: code %d last applied %d", seq, r.Code, r.LastApplied)
		}
	}
	// Past the session's maximum of 3.
	over := update(t, 4, 3, size)
	if r := c.stateUpdate(over); r.Code != wtwire.StateUpdateCodeMaxUpdatesExceeded {
		t.Fatalf("update past max: code %d, want %d", r.Code, wtwire.StateUpdateCodeMaxUpdatesExceeded)
	}
	if !c.closed() {
		t.Fatal("connection left open after a refused update")
	}
	if tt.stored(t, over.Hint) != 0 {
		t.Fatal("update past the maximum stored")
	}
	// A session that was used cannot be created again.
	if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CreateSessionCodeAlreadyExists || r.LastApplied != 3 {
		t.Fatalf("second create: code %d last applied %d", r.Code, r.LastApplied)
	}

	sessions, updates, err := tt.db.Counts()
	if err != nil || sessions != 1 || updates != 3 {
		t.Fatalf("counts: %d sessions, %d updates, %v", sessions, updates, err)
	}

	// Unknown session: a permanent failure.
	c = tt.dial(t, newClientKey(t))
	if r := c.stateUpdate(update(t, 1, 0, size)); r.Code != wtwire.CodePermanentFailure {
		t.Fatalf("update without session: code %d, want %d", r.Code, wtwire.CodePermanentFailure)
	}
	if !c.closed() {
		t.Fatal("connection left open after a refused update")
	}

	// DeleteSession removes the session and its updates.
	c = tt.dial(t, key)
	c.send(&wtwire.DeleteSession{})
	if r, ok := c.recv().(*wtwire.DeleteSessionReply); !ok || r.Code != wtwire.CodeOK {
		t.Fatalf("delete session: %+v", r)
	}
	if tt.stored(t, u1.Hint) != 0 {
		t.Fatal("updates left after DeleteSession")
	}
	if sessions, updates, _ := tt.db.Counts(); sessions != 0 || updates != 0 {
		t.Fatalf("counts after delete: %d sessions, %d updates", sessions, updates)
	}
}

// Malformed and oversized messages, and messages out of place, close the connection; the
// tower keeps serving others.
func TestBadMessages(t *testing.T) {
	tt := startTower(t)
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"unknown message type", []byte{0xff, 0xff, 1, 2, 3}},
		{"truncated StateUpdate", binary.BigEndian.AppendUint16(nil, uint16(wtwire.MsgStateUpdate))},
		{"StateUpdate with a blob length past the message", append(binary.BigEndian.AppendUint16(nil, uint16(wtwire.MsgStateUpdate)), append(make([]byte, 2+2+1+16), 0xff, 0xff, 1)...)},
		{"reply sent to the tower", binary.BigEndian.AppendUint16(nil, uint16(wtwire.MsgStateUpdateReply))},
		{"empty message", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tt.dial(t, key)
			if _, err := c.conn.Write(tc.raw); err != nil {
				t.Fatal(err)
			}
			if !c.closed() {
				t.Fatal("connection left open")
			}
		})
	}
	// A second Init after the first is out of place too.
	c := tt.dial(t, key)
	c.send(wtwire.NewInitMessage(lnwire.NewRawFeatureVector(wtwire.AltruistSessionsRequired), *chaincfg.RegressionNetParams.GenesisHash))
	if !c.closed() {
		t.Fatal("connection left open after a second Init")
	}

	if _, updates, _ := tt.db.Counts(); updates != 0 {
		t.Fatalf("%d updates stored from bad messages", updates)
	}
	c = tt.dial(t, key)
	if r := c.stateUpdate(update(t, 1, 0, size)); r.Code != wtwire.CodeOK {
		t.Fatalf("good update after bad ones: code %d", r.Code)
	}
}

// A client on another chain is refused at Init.
func TestInitOtherChain(t *testing.T) {
	tt := startTower(t)
	conn, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: newClientKey(t)},
		&lnwire.NetAddress{IdentityKey: tt.key.PubKey(), Address: tt.addr}, 5*time.Second, net.DialTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn}
	c.send(wtwire.NewInitMessage(lnwire.NewRawFeatureVector(wtwire.AltruistSessionsRequired), *chaincfg.MainNetParams.GenesisHash))
	c.recv() // the tower's Init
	if !c.closed() {
		t.Fatal("connection left open for a client on another chain")
	}
}

// A client that expects another tower key fails the brontide handshake; the tower goes on.
func TestHandshakeWrongKey(t *testing.T) {
	tt := startTower(t)
	other := newClientKey(t)
	_, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: newClientKey(t)},
		&lnwire.NetAddress{IdentityKey: other.PubKey(), Address: tt.addr}, 5*time.Second, net.DialTimeout)
	if err == nil {
		t.Fatal("handshake with the wrong tower key succeeded")
	}
	// Plain bytes instead of a handshake.
	raw, err := net.Dial("tcp", tt.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(bytes.Repeat([]byte{0}, 50))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil {
		t.Fatal("tower answered a garbage handshake")
	}
	raw.Close()
	if r := tt.createSession(t, newClientKey(t), anchorSession(1)); r.Code != wtwire.CodeOK {
		t.Fatalf("tower not serving after bad handshakes: code %d", r.Code)
	}
}
