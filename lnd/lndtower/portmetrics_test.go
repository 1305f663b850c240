package lndtower

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtserver"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/teos-go/teos/internal/metrics"
)

// scraper serves the port's collectors on the tower's metrics endpoint (internal/metrics'
// handler, over loopback HTTP) and returns a function that scrapes it: each series, as
// `name{labels}`, to its value.
func scraper(t *testing.T, srv *Server) func() map[string]float64 {
	t.Helper()
	m := metrics.New(metrics.Config{})
	if err := m.Register(srv.Collectors()...); err != nil {
		t.Fatal(err)
	}
	for _, c := range srv.Collectors() { // Prometheus's naming conventions
		if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	}
	hs := httptest.NewServer(m.Handler())
	t.Cleanup(hs.Close)
	return func() map[string]float64 {
		t.Helper()
		resp, err := http.Get(hs.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("scrape: %d %s", resp.StatusCode, b)
		}
		out := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "teos_lnd_") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("scrape line %q: %v", line, err)
			}
			out[line[:i]] = v
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// hungUp waits for the tower to close c, as it does after its last reply on a connection.
func hungUp(t *testing.T, c *client) {
	t.Helper()
	if !c.closed() {
		t.Fatal("connection left open after the tower's last reply")
	}
}

// want checks the scraped series named in w.
func want(t *testing.T, got map[string]float64, w map[string]float64) {
	t.Helper()
	for name, v := range w {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s not exported", name)
		} else if g != v {
			t.Errorf("%s = %v, want %v", name, g, v)
		}
	}
}

// The lnd port's metrics after real traffic from lnd's client code over brontide: each
// outcome a client can be answered, each cap's refusal, each handshake's end, read from the
// metrics endpoint.
func TestPortMetrics(t *testing.T) {
	var scrape func() map[string]float64
	now := time.Unix(1_700_000_000, 0) // a fixed clock: registration_rate never refills here
	tt := startTower(t, func(s *Server) {
		s.MaxConnections, s.MaxConnectionsPerAddress = 64, 2
		s.SessionsPerMinute, s.clock = 1, func() time.Time { return now }
		s.HandshakeTimeout = time.Second
		scrape = scraper(t, s)
	})
	before := scrape()
	want(t, before, map[string]float64{
		`teos_lnd_connections_max`:                                       64,
		`teos_lnd_connections_accepted_total`:                            0,
		`teos_lnd_handshakes_total{outcome="completed"}`:                 0,
		`teos_lnd_sessions_accepted_total`:                               0,
		`teos_lnd_sessions_refused_total{reason="max_stored_bytes"}`:     0,
		`teos_lnd_state_updates_refused_total{reason="out_of_order"}`:    0,
		`teos_lnd_delete_sessions_total{outcome="deleted"}`:              0,
		`teos_lnd_state_updates_accepted_total`:                          0,
		`teos_lnd_sessions_refused_total{reason="registration_rate"}`:    0,
		`teos_lnd_state_updates_refused_total{reason="unknown_session"}`: 0,
		`teos_lnd_connections_handshaking`:                               0,
		`teos_lnd_connections_full_total`:                                0,
		`teos_lnd_connections_reset_total`:                               0,
		`teos_lnd_handshakes_total{outcome="timeout"}`:                   0,
		`teos_lnd_sessions_refused_total{reason="blob_type"}`:            0,
		`teos_lnd_sessions_refused_total{reason="invalid_policy"}`:       0,
		`teos_lnd_state_updates_refused_total{reason="blob_size"}`:       0,
		`teos_lnd_delete_sessions_total{outcome="not_found"}`:            0,
		`teos_lnd_sessions_refused_total{reason="store"}`:                0,
		`teos_lnd_state_updates_refused_total{reason="max_updates"}`:     0,
		`teos_lnd_handshakes_total{outcome="failed"}`:                    0,
		`teos_lnd_sessions_refused_total{reason="already_exists"}`:       0,
		`teos_lnd_state_updates_refused_total{reason="already_applied"}`: 0,
		`teos_lnd_state_updates_refused_total{reason="client_behind"}`:   0,
		`teos_lnd_connections`:                                           0,
		`teos_lnd_delete_sessions_total{outcome="store"}`:                0,
		`teos_lnd_state_updates_refused_total{reason="store"}`:           0,
		`teos_lnd_sessions_refused_total{reason="other"}`:                0,
		`teos_lnd_state_updates_refused_total{reason="other"}`:           0,
	})
	size := blobSize(t, blob.TypeAltruistAnchorCommit)
	handshakes := 0 // completed ones

	// Sessions: accepted, then over registration_rate from the same address, a reward
	// session (64) and a policy that does not validate (40) from another.
	a := newClientKey(t)
	for _, c := range []struct {
		from string
		req  *wtwire.CreateSession
		code wtwire.ErrorCode
	}{
		{"127.0.0.1", anchorSession(4), wtwire.CodeOK},
		{"127.0.0.1", anchorSession(4), wtwire.CodeTemporaryFailure},
		{"127.0.0.2", &wtwire.CreateSession{BlobType: blob.TypeRewardCommit, MaxUpdates: 10, RewardRate: 10000, SweepFeeRate: 2500}, wtwire.CreateSessionCodeRejectBlobType},
		{"127.0.0.2", anchorSession(0), wtwire.CodeTemporaryFailure},
	} {
		key := newClientKey(t)
		if c.code == wtwire.CodeOK {
			key = a
		}
		if r := tt.createSessionFrom(t, key, c.req, c.from); r.Code != c.code {
			t.Fatalf("create session from %s: code %d, want %d", c.from, r.Code, c.code)
		}
		handshakes++
	}
	// Updates: two accepted, one out of order (72, the tower hangs up), one of the wrong
	// size (40), two more and the session is full (71).
	c := tt.dialFrom(t, a, "127.0.0.1")
	handshakes++
	for seq := uint16(1); seq <= 2; seq++ {
		if r := c.stateUpdate(update(t, seq, seq-1, size)); r.Code != wtwire.CodeOK {
			t.Fatalf("update %d: code %d", seq, r.Code)
		}
	}
	if r := c.stateUpdate(update(t, 4, 2, size)); r.Code != wtwire.StateUpdateCodeSeqNumOutOfOrder {
		t.Fatalf("update out of order: code %d", r.Code)
	}
	hungUp(t, c) // lnd's tower serves one connection per client key
	c = tt.dialFrom(t, a, "127.0.0.1")
	handshakes++
	if r := c.stateUpdate(update(t, 3, 2, size+1)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("update of the wrong size: code %d", r.Code)
	}
	hungUp(t, c)
	c = tt.dialFrom(t, a, "127.0.0.1")
	handshakes++
	for seq := uint16(3); seq <= 4; seq++ {
		if r := c.stateUpdate(update(t, seq, seq-1, size)); r.Code != wtwire.CodeOK {
			t.Fatalf("update %d: code %d", seq, r.Code)
		}
	}
	if r := c.stateUpdate(update(t, 5, 4, size)); r.Code != wtwire.StateUpdateCodeMaxUpdatesExceeded {
		t.Fatalf("update past the session's maximum: code %d", r.Code)
	}
	hungUp(t, c)
	// A CreateSession of a session with updates (60), then its deletion, then an update of
	// the deleted session (50) and its deletion again.
	if r := tt.createSessionFrom(t, a, anchorSession(4), "127.0.0.1"); r.Code != wtwire.CreateSessionCodeAlreadyExists {
		t.Fatalf("create session with updates: code %d", r.Code)
	}
	handshakes++
	for _, code := range []wtwire.DeleteSessionCode{wtwire.CodeOK, wtwire.DeleteSessionCodeNotFound} {
		c = tt.dialFrom(t, a, "127.0.0.1")
		handshakes++
		c.send(&wtwire.DeleteSession{})
		if r, ok := c.recv().(*wtwire.DeleteSessionReply); !ok || r.Code != code {
			t.Fatalf("delete session: %+v, want code %d", r, code)
		}
		hungUp(t, c)
		if code == wtwire.CodeOK {
			c = tt.dialFrom(t, a, "127.0.0.1")
			handshakes++
			if r := c.stateUpdate(update(t, 5, 4, size)); r.Code != wtwire.CodePermanentFailure {
				t.Fatalf("update of a deleted session: code %d", r.Code)
			}
			hungUp(t, c)
		}
	}

	// Connections: two held from 127.0.0.3 (the per-address cap), a third reset at once.
	holders := []*client{tt.dialFrom(t, newClientKey(t), "127.0.0.3"), tt.dialFrom(t, newClientKey(t), "127.0.0.3")}
	handshakes += len(holders)
	accepted := handshakes + 1
	if over, err := dialerFrom("127.0.0.3")("tcp", tt.addr.String(), 5*time.Second); err == nil {
		defer over.Close()
		if !closedByTower(t, over, 10*time.Second) {
			t.Fatal("connection over the address's cap left open")
		}
	}
	// Handshakes: one silent past the deadline, one with an act one that does not parse.
	if !closedByTower(t, tt.rawConn(t, "127.0.0.4"), 10*time.Second) {
		t.Fatal("silent connection left open")
	}
	bad := tt.rawConn(t, "127.0.0.4")
	if _, err := bad.Write(make([]byte, 50)); err != nil {
		t.Fatal(err)
	}
	if !closedByTower(t, bad, 10*time.Second) {
		t.Fatal("connection with a bad act one left open")
	}
	accepted += 2

	got := scrape()
	want(t, got, map[string]float64{
		`teos_lnd_connections_accepted_total`:                            float64(accepted),
		`teos_lnd_connections_reset_total`:                               1,
		`teos_lnd_handshakes_total{outcome="completed"}`:                 float64(handshakes),
		`teos_lnd_handshakes_total{outcome="timeout"}`:                   1,
		`teos_lnd_handshakes_total{outcome="failed"}`:                    1,
		`teos_lnd_connections_handshaking`:                               0,
		`teos_lnd_sessions_accepted_total`:                               1,
		`teos_lnd_sessions_refused_total{reason="registration_rate"}`:    1,
		`teos_lnd_sessions_refused_total{reason="blob_type"}`:            1,
		`teos_lnd_sessions_refused_total{reason="invalid_policy"}`:       1,
		`teos_lnd_sessions_refused_total{reason="already_exists"}`:       1,
		`teos_lnd_sessions_refused_total{reason="store"}`:                0,
		`teos_lnd_sessions_refused_total{reason="max_stored_bytes"}`:     0,
		`teos_lnd_state_updates_accepted_total`:                          4,
		`teos_lnd_state_updates_refused_total{reason="out_of_order"}`:    1,
		`teos_lnd_state_updates_refused_total{reason="blob_size"}`:       1,
		`teos_lnd_state_updates_refused_total{reason="max_updates"}`:     1,
		`teos_lnd_state_updates_refused_total{reason="unknown_session"}`: 1,
		`teos_lnd_state_updates_refused_total{reason="store"}`:           0,
		`teos_lnd_delete_sessions_total{outcome="deleted"}`:              1,
		`teos_lnd_delete_sessions_total{outcome="not_found"}`:            1,
	})
	// The two holders are open (the closed ones may still be counted until the tower has
	// read their close).
	if n := got[`teos_lnd_connections`]; n < float64(len(holders)) {
		t.Errorf("teos_lnd_connections = %v with %d connections held", n, len(holders))
	}
}

// max_stored_bytes, and a store that cannot be measured: each refusal under its reason.
func TestPortMetricsStorageRefusals(t *testing.T) {
	tt := startTower(t)
	measure := storedBytes(t, tt.db)
	var broken atomic.Bool
	var scrape func() map[string]float64
	tt.start(t, func(s *Server) {
		s.MaxStoredBytes = 1
		s.StoredBytes = func() (int64, error) {
			if broken.Load() {
				return 0, errors.New("disk gone")
			}
			return measure()
		}
		scrape = scraper(t, s)
	})
	if r := tt.createSession(t, newClientKey(t), anchorSession(5)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("session at the cap: code %d", r.Code)
	}
	broken.Store(true)
	if r := tt.createSession(t, newClientKey(t), anchorSession(5)); r.Code != wtwire.CodeTemporaryFailure {
		t.Fatalf("session with the store unmeasured: code %d", r.Code)
	}
	want(t, scrape(), map[string]float64{
		`teos_lnd_sessions_accepted_total`:                           0,
		`teos_lnd_sessions_refused_total{reason="max_stored_bytes"}`: 1,
		`teos_lnd_sessions_refused_total{reason="store"}`:            1,
	})
}

// BenchmarkReplyCount: counting one StateUpdateReply for the metrics (decoding the bytes
// wtserver writes), against wtserver's own encoding of it (the baseline).
func BenchmarkReplyCount(b *testing.B) {
	msg := &wtwire.StateUpdateReply{Code: wtwire.CodeOK, LastApplied: 7}
	var buf bytes.Buffer
	b.Run("wtserver encodes", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if _, err := wtwire.WriteMessage(&buf, msg, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	m := newPortMetrics()
	raw := bytes.Clone(buf.Bytes())
	var id wtdb.SessionID
	b.Run("counted", func(b *testing.B) {
		for b.Loop() {
			m.reply(id, raw)
		}
	})
}

// insertRaced is a store where another instance of a shared database stored the session first.
type insertRaced struct{ wtserver.DB }

func (insertRaced) InsertSessionInfo(*wtdb.SessionInfo) error { return wtdb.ErrSessionAlreadyExists }

// wtserver answers a failed insert with 40, never 60, so the race counts under a 40's reason.
func TestPortMetricsInsertRaceIsNotCode60(t *testing.T) {
	m := newPortMetrics()
	db := observedDB{DB: insertRaced{}, m: m}
	var id wtdb.SessionID
	id[0] = 2
	if err := db.InsertSessionInfo(&wtdb.SessionInfo{ID: id}); !errors.Is(err, wtdb.ErrSessionAlreadyExists) {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := wtwire.WriteMessage(&b, &wtwire.CreateSessionReply{Code: wtwire.CodeTemporaryFailure}, 0); err != nil {
		t.Fatal(err)
	}
	m.reply(id, b.Bytes())
	if got := testutil.ToFloat64(m.sessionsRefused.WithLabelValues(refusedExists)); got != 0 {
		t.Errorf("already_exists (code 60) = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.sessionsRefused.WithLabelValues(refusedStore)); got != 1 {
		t.Errorf("store (code 40) = %v, want 1", got)
	}
}
