package lndtower

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/api/httpapi"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/store"
)

// dialerFrom dials from the local address from ("" lets the system choose).
func dialerFrom(from string) func(network, addr string, timeout time.Duration) (net.Conn, error) {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		return d.Dial(network, addr)
	}
}

// createSessionFrom is createSession from the local address from.
func (tt *testTower) createSessionFrom(t *testing.T, key *btcec.PrivateKey, req *wtwire.CreateSession, from string) *wtwire.CreateSessionReply {
	t.Helper()
	c := tt.dialFrom(t, key, from)
	c.send(req)
	r, ok := c.recv().(*wtwire.CreateSessionReply)
	if !ok {
		t.Fatal("no CreateSessionReply")
	}
	if !c.closed() {
		t.Fatal("connection left open after CreateSession")
	}
	return r
}

func (tt *testTower) hasSession(t *testing.T, key *btcec.PrivateKey) bool {
	t.Helper()
	id := wtdb.NewSessionIDFromPubKey(key.PubKey())
	_, err := tt.db.GetSessionInfo(&id)
	if err != nil && !errors.Is(err, wtdb.ErrSessionNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// rawConn opens a plain TCP connection to the tower from the local address from.
func (tt *testTower) rawConn(t *testing.T, from string) net.Conn {
	t.Helper()
	c, err := dialerFrom(from)("tcp", tt.addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByTower reports whether the tower closed c (its read ends with an error that is not
// the test's own deadline) within the wait.
func closedByTower(t *testing.T, c net.Conn, wait time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.ReadFull(c, make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err == nil {
		t.Fatal("the tower sent a byte to a client that sent none")
	}
	return true
}

// syncBuffer is a log destination the test reads while the server writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func storedBytes(t *testing.T, db *DB) func() (int64, error) {
	t.Helper()
	m, ok := db.s.(interface{ StoredBytes() (int64, error) })
	if !ok {
		t.Fatalf("store %T does not measure its bytes", db.s)
	}
	return m.StoredBytes
}

// max_stored_bytes: once the store holds that many bytes a new session is refused with 40 (the
// client backs off and retries, admission.go) and nothing is stored, while the sessions
// already stored keep their updates and take new ones; a retried CreateSession for a stored
// session without updates is not a new session and is accepted. The refusal is one warn line
// with the figures. Raising the cap lets the refused client in with the same key.
func TestSessionStorageCap(t *testing.T) {
	tt := startTower(t)
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	used, unused := newClientKey(t), newClientKey(t)
	for _, k := range []*btcec.PrivateKey{used, unused} {
		if r := tt.createSession(t, k, anchorSession(5)); r.Code != wtwire.CodeOK {
			t.Fatalf("create session: code %d", r.Code)
		}
	}
	u1 := update(t, 1, 0, size)
	if r := tt.dial(t, used).stateUpdate(u1); r.Code != wtwire.CodeOK {
		t.Fatalf("update 1: code %d", r.Code)
	}

	// The operator restarts the tower with the store at the cap.
	var logs syncBuffer
	measure := storedBytes(t, tt.db)
	atCap, err := measure()
	if err != nil {
		t.Fatal(err)
	}
	stop := tt.start(t, func(s *Server) {
		s.MaxStoredBytes, s.StoredBytes = atCap, measure
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})

	refused := newClientKey(t)
	if r := tt.createSession(t, refused, anchorSession(5)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("new session at the cap: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if tt.hasSession(t, refused) {
		t.Fatal("session refused at the cap was stored")
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var warns []string
	for _, l := range lines {
		if strings.Contains(l, "level=WARN") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "stored bytes at the cap") ||
		!strings.Contains(warns[0], "max_stored_bytes=") || !strings.Contains(warns[0], "stored_bytes=") {
		t.Fatalf("want one warn line with the figures, got %q", warns)
	}

	c := tt.dial(t, used)
	u2 := update(t, 2, 1, size)
	if r := c.stateUpdate(u2); r.Code != wtwire.CodeOK || r.LastApplied != 2 {
		t.Fatalf("update of a stored session at the cap: code %d last applied %d", r.Code, r.LastApplied)
	}
	if tt.stored(t, u1.Hint) != 1 || tt.stored(t, u2.Hint) != 1 {
		t.Fatal("updates of a stored session missing at the cap")
	}
	if r := tt.createSession(t, unused, anchorSession(7)); r.Code != wtwire.CodeOK {
		t.Fatalf("retried CreateSession of a stored session at the cap: code %d", r.Code)
	}

	stop()
	tt.start(t, func(s *Server) { s.MaxStoredBytes, s.StoredBytes = atCap*4, measure })
	if r := tt.createSession(t, refused, anchorSession(5)); r.Code != wtwire.CodeOK {
		t.Fatalf("the refused client once the cap is raised: code %d", r.Code)
	}
}

// A failing measure of the stored bytes is the tower's own fault: 40, as lnd's tower answers
// a database error, and nothing stored.
func TestSessionStorageCapMeasureFails(t *testing.T) {
	tt := startTower(t, func(s *Server) {
		s.MaxStoredBytes = 1 << 30
		s.StoredBytes = func() (int64, error) { return 0, errors.New("disk gone") }
	})
	key := newClientKey(t)
	if r := tt.createSession(t, key, anchorSession(5)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if tt.hasSession(t, key) {
		t.Fatal("session stored")
	}
}

// registration_rate: new sessions per client address per minute. Past it a new session is
// refused with 40 and not stored; another address has its own budget; updates are not counted;
// a retried CreateSession of a stored session does not spend the budget; it refills with time.
func TestSessionRate(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tt := startTower(t, func(s *Server) { s.SessionsPerMinute = 2; s.clock = clock })
	size := blobSize(t, blob.TypeAltruistAnchorCommit)

	first, second := newClientKey(t), newClientKey(t)
	for _, k := range []*btcec.PrivateKey{first, second} {
		if r := tt.createSessionFrom(t, k, anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeOK {
			t.Fatalf("session within the rate: code %d", r.Code)
		}
	}
	// A retry of a stored session without updates adds nothing: within the budget still.
	if r := tt.createSessionFrom(t, second, anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeOK {
		t.Fatalf("retried CreateSession: code %d", r.Code)
	}
	third := newClientKey(t)
	if r := tt.createSessionFrom(t, third, anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("session over the rate: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if tt.hasSession(t, third) {
		t.Fatal("session over the rate stored")
	}
	c := tt.dialFrom(t, first, "127.0.0.1")
	for seq := uint16(1); seq <= 3; seq++ {
		if r := c.stateUpdate(update(t, seq, seq-1, size)); r.Code != wtwire.CodeOK {
			t.Fatalf("update %d over the session rate: code %d", seq, r.Code)
		}
	}
	if r := tt.createSessionFrom(t, newClientKey(t), anchorSession(5), "127.0.0.2"); r.Code != wtwire.CodeOK {
		t.Fatalf("session from another address: code %d", r.Code)
	}

	mu.Lock()
	now = now.Add(30 * time.Second) // one session's worth at 2 a minute
	mu.Unlock()
	if r := tt.createSessionFrom(t, third, anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeOK {
		t.Fatalf("refused client after the refill: code %d", r.Code)
	}
}

// lnd_tower_max_connections_per_address: past it a connection is closed at once, before any
// handshake; other addresses are served; a place freed is taken again; what a client stored
// before is kept.
func TestConnectionsPerAddress(t *testing.T) {
	tt := startTower(t, func(s *Server) {
		s.MaxConnectionsPerAddress = 2
		s.HandshakeTimeout = time.Hour // only the cap can close a silent connection here
	})
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	// Set up from another address: a connection closed by either side leaves the count a
	// moment later than the client sees the close.
	key := newClientKey(t)
	if r := tt.createSessionFrom(t, key, anchorSession(5), "127.0.0.4"); r.Code != wtwire.CodeOK {
		t.Fatalf("create session: code %d", r.Code)
	}
	u1 := update(t, 1, 0, size)
	c := tt.dialFrom(t, key, "127.0.0.4")
	if r := c.stateUpdate(u1); r.Code != wtwire.CodeOK {
		t.Fatalf("update 1: code %d", r.Code)
	}
	c.conn.Close()

	holders := []net.Conn{tt.rawConn(t, "127.0.0.1"), tt.rawConn(t, "127.0.0.1")}
	// The tower resets it as soon as it accepts it, which may come before the dial returns.
	if over, err := dialerFrom("127.0.0.1")("tcp", tt.addr.String(), 5*time.Second); err == nil {
		defer over.Close()
		if !closedByTower(t, over, 10*time.Second) {
			t.Fatal("connection over the address's cap left open")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial over the cap: %v", err)
	}
	for _, h := range holders {
		if closedByTower(t, h, 100*time.Millisecond) {
			t.Fatal("a connection within the cap was closed")
		}
	}
	if r := tt.createSessionFrom(t, newClientKey(t), anchorSession(5), "127.0.0.2"); r.Code != wtwire.CodeOK {
		t.Fatalf("session from another address: code %d", r.Code)
	}

	holders[0].Close()
	// The place is given back once the tower has read the close, which the client cannot
	// see: it retries, as lnd's client does.
	var r *wtwire.StateUpdateReply
	for attempt := 0; ; attempt++ {
		conn, err := brontide.Dial(&keychain.PrivKeyECDH{PrivKey: key},
			&lnwire.NetAddress{IdentityKey: tt.key.PubKey(), Address: tt.addr}, 5*time.Second, dialerFrom("127.0.0.1"))
		if err != nil {
			if attempt == 50 {
				t.Fatalf("no place after one was freed: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Cleanup(func() { conn.Close() })
		c := &client{t: t, key: key, conn: conn}
		c.send(wtwire.NewInitMessage(lnwire.NewRawFeatureVector(wtwire.AltruistSessionsRequired),
			*chaincfg.RegressionNetParams.GenesisHash))
		if _, ok := c.recv().(*wtwire.Init); !ok {
			t.Fatal("tower did not answer Init with Init")
		}
		r = c.stateUpdate(update(t, 2, 1, size))
		break
	}
	if r.Code != wtwire.CodeOK || r.LastApplied != 2 {
		t.Fatalf("update 2 after the refusal: code %d last applied %d", r.Code, r.LastApplied)
	}
	if tt.stored(t, u1.Hint) != 1 {
		t.Fatal("update stored before the refusal is gone")
	}
}

// lnd_tower_max_connections: with every place taken, handshakes included, the tower accepts
// no more (a new client waits in the kernel's queue, its act one unanswered) until one closes;
// then the waiting client's handshake goes on.
func TestConnectionsTowerWide(t *testing.T) {
	var scrape func() map[string]float64
	tt := startTower(t, func(s *Server) {
		s.MaxConnections = 2
		s.HandshakeTimeout = time.Hour
		scrape = scraper(t, s)
	})
	holders := []net.Conn{tt.rawConn(t, "127.0.0.1"), tt.rawConn(t, "127.0.0.2")}
	waiting := tt.rawConn(t, "127.0.0.3")
	m := brontide.NewBrontideMachine(true, &keychain.PrivKeyECDH{PrivKey: newClientKey(t)}, tt.key.PubKey())
	act1, err := m.GenActOne()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiting.Write(act1[:]); err != nil {
		t.Fatal(err)
	}
	var act2 [brontide.ActTwoSize]byte
	waiting.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := io.ReadFull(waiting, act2[:]); err == nil {
		t.Fatal("act two answered with every place taken")
	}
	// The operator sees the port full and both places taken, once the tower has taken the
	// holders from the kernel's queue (their dials returned before that).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		got := scrape()
		if got["teos_lnd_connections_full_total"] >= 1 && got["teos_lnd_connections"] == 2 && got["teos_lnd_connections_max"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("full_total %v, connections %v, max %v; want >= 1, 2, 2", got["teos_lnd_connections_full_total"],
				got["teos_lnd_connections"], got["teos_lnd_connections_max"])
		}
	}
	holders[0].Close()
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(waiting, act2[:]); err != nil {
		t.Fatalf("no act two once a place was freed: %v", err)
	}
	if err := m.RecvActTwo(act2); err != nil {
		t.Fatalf("act two: %v", err)
	}
}

// A connection that does not complete brontide's three acts within the handshake deadline is
// closed, whether it sends nothing or stops after act one.
func TestHandshakeDeadline(t *testing.T) {
	const deadline = 200 * time.Millisecond
	tt := startTower(t, func(s *Server) { s.HandshakeTimeout = deadline })
	silent := tt.rawConn(t, "127.0.0.1")
	if !closedByTower(t, silent, 10*time.Second) {
		t.Fatal("silent connection left open past the handshake deadline")
	}

	// The deadline counts from the tower's accept, which may come before the dial returns:
	// a test goroutine held up for longer than it before writing act one (a loaded machine)
	// rightly sees the close instead of act two. Such a try, closed no sooner than the
	// deadline allows, is made again.
	var halfway net.Conn
	for try := 1; ; try++ {
		m := brontide.NewBrontideMachine(true, &keychain.PrivKeyECDH{PrivKey: newClientKey(t)}, tt.key.PubKey())
		act1, err := m.GenActOne()
		if err != nil {
			t.Fatal(err)
		}
		dialed := time.Now()
		halfway = tt.rawConn(t, "127.0.0.1")
		var act2 [brontide.ActTwoSize]byte
		if _, err = halfway.Write(act1[:]); err == nil {
			halfway.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err = io.ReadFull(halfway, act2[:]); err == nil {
				break
			}
		}
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("act one neither answered nor closed")
		}
		if took := time.Since(dialed); took < deadline {
			t.Fatalf("act one closed %v after the dial, within the handshake deadline: %v", took, err)
		}
		if try == 5 {
			t.Fatalf("act two: %v (%d tries)", err, try)
		}
		t.Logf("try %d: closed before act two (%v); the test was late", try, err)
	}
	if !closedByTower(t, halfway, 10*time.Second) {
		t.Fatal("connection without act three left open past the handshake deadline")
	}
}

// The operator's keys reach the server: the lnd port's own connection keys, and the teos API's
// max_stored_bytes (measured by the tower's store) and registration_rate.
func TestApplyCaps(t *testing.T) {
	db := openDB(t)
	eng, ok := db.s.(store.Engine)
	if !ok {
		t.Fatalf("store %T is not an engine", db.s)
	}
	cfg := config.Default()
	cfg.LndTowerMaxConnections, cfg.LndTowerMaxConnectionsPerAddress = 7, 3
	cfg.MaxStoredBytes, cfg.RegistrationRate = 1<<63, 5
	var s Server
	s.applyCaps(&cfg, eng)
	if s.MaxConnections != 7 || s.MaxConnectionsPerAddress != 3 || s.SessionsPerMinute != 5 || s.MaxStoredBytes != 1<<62 {
		t.Fatalf("caps %+v", s)
	}
	want, err := eng.StoredBytes()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.StoredBytes(); err != nil || got != want {
		t.Fatalf("StoredBytes() = %d, %v; want the store's %d", got, err, want)
	}
	def := config.Default()
	s = Server{}
	s.applyCaps(&def, eng)
	if s.MaxConnections != config.DefaultLndTowerMaxConnections || s.MaxConnectionsPerAddress != config.DefaultLndTowerMaxConnectionsPerAddress ||
		s.MaxStoredBytes != 0 || s.SessionsPerMinute != 0 {
		t.Fatalf("default caps %+v", s)
	}
}

// Silent connections from one address do not hold other clients' handshakes: lnd's listener
// ran at most 50 handshakes at once, 5 s per act, so 100 silent connections from one address
// made another client's handshake time out (measured: brontide.Dial failed after 5 s); with
// the default per-address cap only 32 of them are held.
func TestSilentConnectionsDoNotHoldOthers(t *testing.T) {
	tt := startTower(t, func(s *Server) {
		s.MaxConnections = config.DefaultLndTowerMaxConnections
		s.MaxConnectionsPerAddress = config.DefaultLndTowerMaxConnectionsPerAddress
	})
	for range 100 {
		if c, err := dialerFrom("127.0.0.1")("tcp", tt.addr.String(), 5*time.Second); err == nil {
			t.Cleanup(func() { c.Close() })
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatal(err)
		}
	}
	if r := tt.createSessionFrom(t, newClientKey(t), anchorSession(5), "127.0.0.2"); r.Code != wtwire.CodeOK {
		t.Fatalf("session from another address: code %d", r.Code)
	}
}

// Under teosd the session rate spends the public API's registration_rate budget
// (Server.Registrations): an address that registered over HTTP has that much less for new
// sessions, and the other way round; other addresses keep theirs.
func TestSessionRateSharedBudget(t *testing.T) {
	now := time.Unix(1_700_000_000, 0) // a fixed clock: nothing refills here
	shared := httpapi.NewRegistrationLimit(1, func() time.Time { return now })
	var scrape func() map[string]float64
	tt := startTower(t, func(s *Server) {
		s.Registrations = shared
		s.SessionsPerMinute = 5 // the port's own budget, unused when the shared one is set
		scrape = scraper(t, s)
	})
	if !shared.Take("127.0.0.1") { // a registration over HTTP from 127.0.0.1
		t.Fatal("first registration refused")
	}
	refused := newClientKey(t)
	if r := tt.createSessionFrom(t, refused, anchorSession(5), "127.0.0.1"); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("session after the address's HTTP registration: code %d, want %d", r.Code, wtwire.CodeTemporaryFailure)
	}
	if tt.hasSession(t, refused) {
		t.Fatal("refused session stored")
	}
	if r := tt.createSessionFrom(t, newClientKey(t), anchorSession(5), "127.0.0.2"); r.Code != wtwire.CodeOK {
		t.Fatalf("session from another address: code %d", r.Code)
	}
	if shared.Take("127.0.0.2") {
		t.Fatal("127.0.0.2 registered over HTTP after spending its budget on a session")
	}
	want(t, scrape(), map[string]float64{
		`teos_lnd_sessions_accepted_total`:                            1,
		`teos_lnd_sessions_refused_total{reason="registration_rate"}`: 1,
	})
}
