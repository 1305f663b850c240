package lndtower

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtserver"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teos-go/teos/internal/api/limits"
)

// The lnd port's metrics, named as the public API's (teos_api_connections_*) under teos_lnd_.
// Sessions and updates are counted from the replies wtserver writes, so they say what the
// client was told; a refusal's reason comes from the store call that caused it (noted by
// observedDB), or else from the reply's code.

// Reasons a CreateSession is refused (label reason of teos_lnd_sessions_refused_total) and
// a StateUpdate (teos_lnd_state_updates_refused_total), with lnd's reply code.
const (
	refusedStoredBytes = "max_stored_bytes"  // 40: the store holds max_stored_bytes
	refusedRate        = "registration_rate" // 40: the address's new sessions per minute
	refusedPolicy      = "invalid_policy"    // 40: a policy lnd's wtpolicy does not accept
	refusedStore       = "store"             // 40: a fault of the tower's store, or a shared database's race
	refusedExists      = "already_exists"    // 60: the session has updates already
	refusedBlobType    = "blob_type"         // 64: a reward or unknown blob type
	refusedOther       = "other"             // any other code (none in lnd 0.21's wtserver)

	updateUnknown      = "unknown_session" // 50
	updateApplied      = "already_applied" // 50: a sequence number already stored
	updateClientBehind = "client_behind"   // 70
	updateMaxUpdates   = "max_updates"     // 71
	updateOutOfOrder   = "out_of_order"    // 72
	updateBlobSize     = "blob_size"       // 40: not the size of the session's blob type

	handshakeCompleted = "completed"
	handshakeTimeout   = "timeout"
	handshakeFailed    = "failed"

	deleteDone     = "deleted"
	deleteNotFound = "not_found"
)

var (
	sessionRefusals = []string{refusedStoredBytes, refusedRate, refusedPolicy, refusedStore, refusedExists, refusedBlobType, refusedOther}
	updateRefusals  = []string{updateUnknown, updateApplied, updateClientBehind, updateMaxUpdates, updateOutOfOrder, updateBlobSize, refusedStore, refusedOther}
)

// portMetrics are the lnd port's counts; the listener's are read at scrape time.
type portMetrics struct {
	lis         atomic.Pointer[limits.Listener] // set once Serve has opened it
	max         atomic.Int64                    // the tower-wide cap in use (0: none)
	handshaking atomic.Int64

	handshakes      *prometheus.CounterVec
	sessions        prometheus.Counter
	sessionsRefused *prometheus.CounterVec
	deleted         *prometheus.CounterVec
	updates         prometheus.Counter
	updatesRefused  *prometheus.CounterVec

	mu    sync.Mutex
	notes map[wtdb.SessionID]string // why the store refused a session's last call
}

func newPortMetrics() *portMetrics {
	m := &portMetrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teos_lnd_handshakes_total",
			Help: "Brontide handshakes on the lnd port by outcome (completed; timeout: not done within the handshake deadline; failed: bad acts, wrong tower key or the client left).",
		}, []string{"outcome"}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teos_lnd_sessions_accepted_total",
			Help: "CreateSession answered OK: a session stored (a retried CreateSession of a stored session without updates included).",
		}),
		sessionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teos_lnd_sessions_refused_total",
			Help: "CreateSession refused, by reason (max_stored_bytes, registration_rate, invalid_policy, store: code 40; already_exists: 60; blob_type: 64; other).",
		}, []string{"reason"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teos_lnd_delete_sessions_total",
			Help: "DeleteSession requests by outcome (deleted; not_found; store: a fault of the tower's store).",
		}, []string{"outcome"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "teos_lnd_state_updates_accepted_total",
			Help: "StateUpdate answered OK: the update was stored.",
		}),
		updatesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "teos_lnd_state_updates_refused_total",
			Help: "StateUpdate refused, by reason (unknown_session, already_applied: code 50; client_behind: 70; max_updates: 71; out_of_order: 72; blob_size, store: 40; other).",
		}, []string{"reason"}),
		notes: make(map[wtdb.SessionID]string),
	}
	// Every series shows from the first scrape, so rate() has a starting point.
	for _, o := range []string{handshakeCompleted, handshakeTimeout, handshakeFailed} {
		m.handshakes.WithLabelValues(o)
	}
	for _, r := range sessionRefusals {
		m.sessionsRefused.WithLabelValues(r)
	}
	for _, r := range updateRefusals {
		m.updatesRefused.WithLabelValues(r)
	}
	for _, o := range []string{deleteDone, deleteNotFound, refusedStore} {
		m.deleted.WithLabelValues(o)
	}
	return m
}

func (m *portMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.handshakes, m.sessions, m.sessionsRefused, m.deleted, m.updates, m.updatesRefused, (*portCollector)(m)}
}

// handshake counts one handshake's end.
func (m *portMetrics) handshake(err error) {
	switch {
	case err == nil:
		m.handshakes.WithLabelValues(handshakeCompleted).Inc()
	case errors.Is(err, os.ErrDeadlineExceeded):
		m.handshakes.WithLabelValues(handshakeTimeout).Inc()
	default:
		m.handshakes.WithLabelValues(handshakeFailed).Inc()
	}
}

// note records why the store refused id's call; the reply to it takes the reason.
func (m *portMetrics) note(id wtdb.SessionID, reason string) {
	m.mu.Lock()
	m.notes[id] = reason
	m.mu.Unlock()
}

func (m *portMetrics) takeNote(id wtdb.SessionID) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.notes[id]
	delete(m.notes, id)
	return r
}

// reply counts a message wtserver sends the client with key id (one whole message per
// write, wtserver's sendMessage); other messages and undecodable bytes count nothing.
func (m *portMetrics) reply(id wtdb.SessionID, b []byte) {
	if len(b) < 2 {
		return
	}
	switch wtwire.MessageType(uint16(b[0])<<8 | uint16(b[1])) {
	case wtwire.MsgCreateSessionReply, wtwire.MsgStateUpdateReply, wtwire.MsgDeleteSessionReply:
	default:
		return
	}
	msg, err := wtwire.ReadMessage(bytes.NewReader(b), 0)
	if err != nil {
		return
	}
	switch r := msg.(type) {
	case *wtwire.CreateSessionReply:
		if r.Code == wtwire.CodeOK {
			m.takeNote(id)
			m.sessions.Inc()
			return
		}
		reason := m.takeNote(id)
		if reason == "" {
			switch r.Code {
			case wtwire.CreateSessionCodeAlreadyExists:
				reason = refusedExists
			case wtwire.CreateSessionCodeRejectBlobType:
				reason = refusedBlobType
			case wtwire.CodeTemporaryFailure: // the session could not be read
				reason = refusedStore
			default:
				reason = refusedOther
			}
		}
		m.sessionsRefused.WithLabelValues(reason).Inc()
	case *wtwire.StateUpdateReply:
		if r.Code == wtwire.CodeOK {
			m.takeNote(id)
			m.updates.Inc()
			return
		}
		reason := m.takeNote(id)
		if reason == "" {
			reason = refusedOther
		}
		m.updatesRefused.WithLabelValues(reason).Inc()
	case *wtwire.DeleteSessionReply:
		m.takeNote(id)
		switch r.Code {
		case wtwire.CodeOK:
			m.deleted.WithLabelValues(deleteDone).Inc()
		case wtwire.DeleteSessionCodeNotFound:
			m.deleted.WithLabelValues(deleteNotFound).Inc()
		default:
			m.deleted.WithLabelValues(refusedStore).Inc()
		}
	}
}

// forget drops the note of a client with no connection left.
func (m *portMetrics) forget(id wtdb.SessionID) { m.takeNote(id) }

// observedDB notes why the store refused a session or an update, for the reply's count.
type observedDB struct {
	wtserver.DB
	m *portMetrics
}

func (d observedDB) InsertSessionInfo(s *wtdb.SessionInfo) error {
	err := d.DB.InsertSessionInfo(s)
	if err != nil {
		d.m.note(s.ID, sessionRefusal(err))
	}
	return err
}

func (d observedDB) InsertStateUpdate(u *wtdb.SessionStateUpdate) (uint16, error) {
	n, err := d.DB.InsertStateUpdate(u)
	if err != nil {
		d.m.note(u.ID, updateRefusal(err))
	}
	return n, err
}

func sessionRefusal(err error) string {
	switch {
	case errors.Is(err, ErrStorageFull):
		return refusedStoredBytes
	case errors.Is(err, ErrSessionRate):
		return refusedRate
	case errors.Is(err, errInvalidPolicy):
		return refusedPolicy
	}
	// Anything else, a session another instance of a shared database stored first included,
	// wtserver answers with 40 (its code 60 comes from its own read, before any insert).
	return refusedStore
}

func updateRefusal(err error) string {
	switch {
	case errors.Is(err, wtdb.ErrSessionNotFound):
		return updateUnknown
	case errors.Is(err, wtdb.ErrSeqNumAlreadyApplied):
		return updateApplied
	case errors.Is(err, wtdb.ErrLastAppliedReversion):
		return updateClientBehind
	case errors.Is(err, wtdb.ErrSessionConsumed):
		return updateMaxUpdates
	case errors.Is(err, wtdb.ErrUpdateOutOfOrder):
		return updateOutOfOrder
	case errors.Is(err, ErrInvalidBlobSize):
		return updateBlobSize
	}
	return refusedStore
}

// portCollector reads the capped listener's counts once per scrape.
type portCollector portMetrics

var portDescs = struct{ accepted, reset, full, open, handshaking, max *prometheus.Desc }{
	accepted: prometheus.NewDesc("teos_lnd_connections_accepted_total",
		"lnd port connections accepted from the kernel.", nil, nil),
	reset: prometheus.NewDesc("teos_lnd_connections_reset_total",
		"lnd port connections reset as they were accepted: past lnd_tower_max_connections_per_address.", nil, nil),
	full: prometheus.NewDesc("teos_lnd_connections_full_total",
		"Times every place of the lnd port (lnd_tower_max_connections) was taken: it stopped accepting until a connection closed (new clients, if any, waited in the kernel's queue).", nil, nil),
	open: prometheus.NewDesc("teos_lnd_connections",
		"lnd port connections open now, handshakes included.", nil, nil),
	handshaking: prometheus.NewDesc("teos_lnd_connections_handshaking",
		"lnd port connections in brontide's handshake now.", nil, nil),
	max: prometheus.NewDesc("teos_lnd_connections_max",
		"The most lnd port connections open at once: lnd_tower_max_connections as fitted to the open files limit (0: no cap).", nil, nil),
}

func (c *portCollector) Describe(ch chan<- *prometheus.Desc) {
	d := portDescs
	for _, x := range []*prometheus.Desc{d.accepted, d.reset, d.full, d.open, d.handshaking, d.max} {
		ch <- x
	}
}

func (c *portCollector) Collect(ch chan<- prometheus.Metric) {
	var s limits.ListenerStats
	if l := c.lis.Load(); l != nil {
		s = l.Stats()
	}
	d := portDescs
	ch <- prometheus.MustNewConstMetric(d.accepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(d.reset, prometheus.CounterValue, float64(s.Reset))
	ch <- prometheus.MustNewConstMetric(d.full, prometheus.CounterValue, float64(s.Full))
	ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(s.Serving))
	ch <- prometheus.MustNewConstMetric(d.handshaking, prometheus.GaugeValue, float64(c.handshaking.Load()))
	ch <- prometheus.MustNewConstMetric(d.max, prometheus.GaugeValue, float64(c.max.Load()))
}
