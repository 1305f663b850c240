package lndtower

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/lightningnetwork/lnd/brontide"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtwire"

	"github.com/teos-go/teos/internal/api/clientaddr"
	"github.com/teos-go/teos/internal/blockfirst"
)

// DefaultHandshakeTimeout bounds brontide's three acts together, from accept to act three:
// lnd's own listener allows 5 s for each of the two reads.
const DefaultHandshakeTimeout = 10 * time.Second

// listener runs the responder's side of brontide's handshake on the connections a capped
// listener hands out, and hands wtserver the ones that complete it in time. It replaces
// brontide.NewListener, which opens its own TCP listener (so no cap can sit under it) and
// gives each act its own deadline.
type listener struct {
	inner   net.Listener // the capped TCP listener
	key     keychain.SingleKeyECDH
	timeout time.Duration
	log     *slog.Logger
	met     *portMetrics
	blocks  *blockfirst.Gate // nil: messages never wait for blocks

	conns chan *peerConn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup // the accept loop and the handshakes

	mu   sync.Mutex
	live map[net.Conn]struct{} // handshaking or served: closed with the listener
	// The served connections of each client key, oldest first. All of them: wtserver serves
	// one and closes any other with the same key, whose close must not hide the address of
	// the one served (addrOf) and so move its sessions to another rate budget.
	byKey map[wtdb.SessionID][]*peerConn
	shut  bool
}

func newListener(inner net.Listener, key keychain.SingleKeyECDH, timeout time.Duration, log *slog.Logger, met *portMetrics) *listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if met == nil {
		met = newPortMetrics()
	}
	l := &listener{inner: inner, key: key, timeout: timeout, log: log, met: met,
		conns: make(chan *peerConn), done: make(chan struct{}),
		live: make(map[net.Conn]struct{}), byKey: make(map[wtdb.SessionID][]*peerConn)}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose handshake completed (a *peerConn).
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes every connection, handshaking or served, then waits for
// the handshakes to end.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		l.shut = true
		live := make([]net.Conn, 0, len(l.live))
		for c := range l.live {
			live = append(live, c)
		}
		l.mu.Unlock()
		for _, c := range live {
			_ = c.Close()
		}
		l.wg.Wait()
	})
	return err
}

func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// addrOf names the address of the oldest open connection of the client with key id (only
// the key's holder can open one), grouped as the per-address caps count it (an IPv6 /64);
// "unknown" if none is open.
func (l *listener) addrOf(id wtdb.SessionID) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ps := l.byKey[id]; len(ps) > 0 {
		return ps[0].addr
	}
	return "unknown"
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does, rather than spin.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			l.log.Warn("lnd tower accept failed, retrying", "err", err, "retry_in", pause)
			select {
			case <-time.After(pause):
			case <-l.done:
				return
			}
			continue
		}
		pause = 0
		l.mu.Lock()
		if l.shut {
			l.mu.Unlock()
			_ = c.Close()
			return
		}
		l.live[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(c)
	}
}

// handshake runs acts one to three under one deadline; a connection that does not finish
// them in time, or fails them, is closed.
func (l *listener) handshake(c net.Conn) {
	defer l.wg.Done()
	l.met.handshaking.Add(1)
	p, err := l.respond(c)
	l.met.handshaking.Add(-1)
	l.met.handshake(err)
	if err != nil {
		l.drop(c)
		l.log.Debug("lnd client handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		l.drop(c)
		return
	}
	l.byKey[p.id] = append(l.byKey[p.id], p)
	l.mu.Unlock()
	select {
	case l.conns <- p:
	case <-l.done:
		_ = p.Close()
	}
}

func (l *listener) respond(c net.Conn) (*peerConn, error) {
	// Writes too: a client that does not read act two must not hold the goroutine.
	if err := c.SetDeadline(time.Now().Add(l.timeout)); err != nil {
		return nil, err
	}
	m := brontide.NewBrontideMachine(false, l.key, nil)
	var act1 [brontide.ActOneSize]byte
	if _, err := io.ReadFull(c, act1[:]); err != nil {
		return nil, fmt.Errorf("read act one: %w", err)
	}
	if err := m.RecvActOne(act1); err != nil {
		return nil, fmt.Errorf("act one: %w", err)
	}
	act2, err := m.GenActTwo()
	if err != nil {
		return nil, fmt.Errorf("act two: %w", err)
	}
	if _, err := c.Write(act2[:]); err != nil {
		return nil, fmt.Errorf("write act two: %w", err)
	}
	var act3 [brontide.ActThreeSize]byte
	if _, err := io.ReadFull(c, act3[:]); err != nil {
		return nil, fmt.Errorf("read act three: %w", err)
	}
	pub, err := remoteStatic(m, act3)
	if err != nil {
		return nil, fmt.Errorf("act three: %w", err)
	}
	if err := m.RecvActThree(act3); err != nil {
		return nil, fmt.Errorf("act three: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil { // wtserver sets its own per message
		return nil, err
	}
	return &peerConn{Conn: c, m: m, pub: pub, id: wtdb.NewSessionIDFromPubKey(pub),
		addr: clientaddr.Group(clientaddr.Peer(c.RemoteAddr().String())).String(), l: l}, nil
}

// remoteStatic reads the client's static key from act three. brontide.Machine keeps it
// unexported, so a copy of the machine (its state is plain values; the AEAD it holds is
// stateless) decrypts the key with the exported DecryptAndHash while m itself is left as
// it was for RecvActThree, which authenticates the whole act: the key is trusted only once
// RecvActThree has accepted it.
func remoteStatic(m *brontide.Machine, act3 [brontide.ActThreeSize]byte) (*btcec.PublicKey, error) {
	if act3[0] != brontide.HandshakeVersion {
		return nil, fmt.Errorf("handshake version %d", act3[0])
	}
	shadow := *m
	raw, err := shadow.DecryptAndHash(act3[1 : 1+btcec.PubKeyBytesLenCompressed+16])
	if err != nil {
		return nil, err
	}
	return btcec.ParsePubKey(raw)
}

// drop closes a connection that will not be served.
func (l *listener) drop(c net.Conn) {
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
	_ = c.Close()
}

// peerConn is a connection after brontide's handshake: wtserver.Peer over lnd's
// brontide.Machine.
type peerConn struct {
	net.Conn
	m    *brontide.Machine
	pub  *btcec.PublicKey
	id   wtdb.SessionID
	addr string // grouped as the per-address caps count it
	l    *listener
	once sync.Once
	// readDeadline is the last read deadline set, in Unix nanoseconds (0: none).
	readDeadline atomic.Int64
}

// ReadNextMessage reads and decrypts the next message. A message whose handling costs store
// work waits first while a block is processed (blocks first): at most the gate's bound, which
// lnd's client, reading each reply within 15 s, absorbs. The wait holds no lock, ends at the
// read deadline wtserver set for the message, and is dropped unanswered if the listener
// closes meanwhile (the tower is stopping: the client sends it again).
func (p *peerConn) ReadNextMessage() ([]byte, error) {
	msg, err := p.m.ReadMessage(p.Conn)
	if err != nil || p.l.blocks == nil || !waitsForBlocks(msg) {
		return msg, err
	}
	var deadline time.Time
	if d := p.readDeadline.Load(); d != 0 {
		deadline = time.Unix(0, d)
	}
	if !p.l.blocks.WaitUntil(deadline, p.l.done) {
		return nil, net.ErrClosed
	}
	return msg, nil
}

// waitsForBlocks reports whether msg is a request wtserver answers with store work: a new
// session (a read, the caps, a write), a state update or a session's deletion (a write each).
// Init is answered from memory, and anything else is refused unread.
func waitsForBlocks(msg []byte) bool {
	if len(msg) < 2 {
		return false
	}
	switch wtwire.MessageType(binary.BigEndian.Uint16(msg)) {
	case wtwire.MsgCreateSession, wtwire.MsgStateUpdate, wtwire.MsgDeleteSession:
		return true
	}
	return false
}

// SetReadDeadline is the connection's, kept for the blocks-first wait too.
func (p *peerConn) SetReadDeadline(t time.Time) error {
	p.keepReadDeadline(t)
	return p.Conn.SetReadDeadline(t)
}

// SetDeadline is the connection's, kept for the blocks-first wait too.
func (p *peerConn) SetDeadline(t time.Time) error {
	p.keepReadDeadline(t)
	return p.Conn.SetDeadline(t)
}

func (p *peerConn) keepReadDeadline(t time.Time) {
	if t.IsZero() {
		p.readDeadline.Store(0)
	} else {
		p.readDeadline.Store(t.UnixNano())
	}
}

// Read is not offered: messages are read whole with ReadNextMessage.
func (p *peerConn) Read([]byte) (int, error) {
	return 0, errors.New("lnd tower connection: use ReadNextMessage")
}

// Write encrypts b and sends it, in frames of at most 65535 bytes as brontide allows.
// wtserver writes one whole message per call: its replies are counted for the metrics.
func (p *peerConn) Write(b []byte) (int, error) {
	p.l.met.reply(p.id, b)
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), math.MaxUint16)]
		if err := p.m.WriteMessage(chunk); err != nil {
			return n, err
		}
		if _, err := p.m.Flush(p.Conn); err != nil {
			return n, err
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

// RemotePub is the client's static key: lnd's session id.
func (p *peerConn) RemotePub() *btcec.PublicKey { return p.pub }

// Close closes the connection, which gives its places under the caps back.
func (p *peerConn) Close() error {
	p.once.Do(func() {
		p.l.mu.Lock()
		delete(p.l.live, p.Conn)
		ps := slices.DeleteFunc(p.l.byKey[p.id], func(q *peerConn) bool { return q == p })
		if len(ps) == 0 {
			delete(p.l.byKey, p.id)
			p.l.met.forget(p.id)
		} else {
			p.l.byKey[p.id] = ps
		}
		p.l.mu.Unlock()
	})
	return p.Conn.Close()
}
