package pgstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// commitCutter forwards PostgreSQL connections and, when armed, cuts the connection that sent
// COMMIT as soon as the server has answered it, without passing the answer on: the server
// committed, the client cannot tell. When drop is armed instead, the COMMIT itself is lost:
// the client's side is closed, the server's stays open and silent, its transaction open.
// When fatal is armed, the server's answer to COMMIT is replaced by the FATAL error PgBouncer
// sends its client when its own connection to the server fails mid-query ("server conn
// crashed?", 08P01): the server committed, the client hears an error.
type commitCutter struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	drop   atomic.Bool
	fatal  atomic.Bool
	// stall, when armed, stops reading the server's side of the connection that carries the
	// next data row over 64 KiB, as a stopped client does, and closes stalled (once): the
	// server's sends block once the sockets' buffers are full, and nothing is closed.
	stall   atomic.Bool
	stalled chan struct{}
	// fakeKeys replaces the backend's process id in its cancellation key with another, as
	// PgBouncer does (its clients' keys are its own).
	fakeKeys atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startCommitCutter(t testing.TB, target string) *commitCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{ln: ln, target: target, stop: make(chan struct{}), stalled: make(chan struct{})}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			var cut, fatal atomic.Bool // this connection sent an armed COMMIT (fatal: answer with an error)
			var stalled atomic.Bool
			p.wg.Go(func() { p.clientToServer(c, s, &cut, &fatal, &stalled) })
			p.wg.Go(func() { p.serverToClient(s, c, &cut, &fatal, &stalled) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		close(p.stop)
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// readMsg reads one protocol message: a type byte (unless untyped, as the startup message)
// and an int32 length that counts itself.
func readMsg(r io.Reader, typed bool) ([]byte, error) {
	n := 4
	if typed {
		n = 5
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	size := int(binary.BigEndian.Uint32(head[n-4:]))
	if size < 4 || size > 1<<26 {
		return nil, io.ErrUnexpectedEOF
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(head, body...), nil
}

func (p *commitCutter) clientToServer(c, s net.Conn, cut, fatal, stalled *atomic.Bool) {
	defer s.Close()
	typed := false // the startup message has no type byte (sslmode=disable: no SSL request)
	for {
		m, err := readMsg(c, typed)
		if err != nil {
			if stalled.Load() { // a stopped client closes nothing
				<-p.stop
			}
			return
		}
		isCommit := typed && m[0] == 'Q' && bytes.EqualFold(bytes.TrimRight(m[5:], "\x00"), []byte("commit"))
		if isCommit && p.drop.CompareAndSwap(true, false) {
			c.Close()
			<-p.stop
			return
		}
		if isCommit && p.armed.CompareAndSwap(true, false) {
			cut.Store(true)
		}
		if isCommit && p.fatal.CompareAndSwap(true, false) {
			fatal.Store(true)
			cut.Store(true)
		}
		typed = true
		if _, err := s.Write(m); err != nil {
			return
		}
	}
}

func (p *commitCutter) serverToClient(s, c net.Conn, cut, fatal, stalled *atomic.Bool) {
	defer c.Close()
	for {
		m, err := readMsg(s, true)
		if err != nil {
			return
		}
		if m[0] == 'D' && len(m) > 64<<10 && p.stall.CompareAndSwap(true, false) {
			stalled.Store(true)
			close(p.stalled)
			<-p.stop
			return
		}
		if cut.Load() && m[0] == 'C' && bytes.HasPrefix(m[5:], []byte("COMMIT")) {
			s.Close() // committed; the client never hears it
			if fatal.Load() {
				_, _ = c.Write(errorResponse("FATAL", "08P01", "server conn crashed?"))
			}
			return
		}
		if m[0] == 'K' && len(m) >= 13 && p.fakeKeys.Load() {
			binary.BigEndian.PutUint32(m[5:9], 0x7ffffff0)
		}
		if _, err := c.Write(m); err != nil {
			return
		}
	}
}

// errorResponse is a protocol ErrorResponse message.
func errorResponse(severity, code, msg string) []byte {
	var body []byte
	for _, f := range []struct {
		t byte
		v string
	}{{'S', severity}, {'V', severity}, {'C', code}, {'M', msg}} {
		body = append(append(append(body, f.t), f.v...), 0)
	}
	body = append(body, 0)
	m := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(m[1:], uint32(len(body)+4))
	return append(m, body...)
}

// renewals runs, through a commitCutter armed by arm, one group-commit batch of n users'
// renewals (+5 slots on 10 each), and returns the batch's calls and the users' slots after.
func renewals(t *testing.T, n int, arm func(*commitCutter) *atomic.Bool) ([]*writeCall, []uint32) {
	var proxy *commitCutter
	f := newVanishedFixture(t, withCommitCutter(&proxy))
	s := f.Other
	var users []teos.UserID
	for i := range n {
		users = append(users, teos.UserID{2, byte(i)})
	}
	for _, id := range users {
		if _, err := s.UpdateUser(id, func(store.UserInfo, bool) (store.UserInfo, error) {
			return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := &committer{pool: f.Gone.pool, maxBatch: 10}

	// Registrations' renewals (+5 slots each) in one batch, as the group commit runs them.
	var calls []*writeCall
	for _, id := range users {
		calls = append(calls, &writeCall{done: make(chan struct{}), fn: func(ctx context.Context, tx pgx.Tx) error {
			prev, _, err := getUser(ctx, tx, id, true)
			if err != nil {
				return err
			}
			prev.AvailableSlots += 5
			_, err = tx.Exec(ctx, putUserSQL, userArgs(id, prev)...)
			return err
		}})
	}
	// New connections, made once armed: fakeKeys rewrites a connection's key as it is made.
	f.Gone.pool.Reset()
	armed := arm(proxy)
	c.commit(calls)
	if armed.Load() {
		t.Fatal("the batch sent no COMMIT through the proxy")
	}
	var slots []uint32
	for i, id := range users {
		got, _, err := s.User(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("user %d: %d slots, call error %v", i, got.AvailableSlots, calls[i].err)
		slots = append(slots, got.AvailableSlots)
	}
	return calls, slots
}

// A batch whose COMMIT's answer is lost may have committed: running its calls again one by one
// would apply them twice (a registration credits its slots twice). Reporting a failure would
// as well, through the client sending it again: the server is asked, and the calls succeed.
func TestLostCommitAnswerIsNotRetried(t *testing.T) {
	calls, slots := renewals(t, 2, func(p *commitCutter) *atomic.Bool { p.armed.Store(true); return &p.armed })
	for i := range calls {
		if calls[i].err != nil || slots[i] != 15 {
			t.Errorf("user %d: committed renewal reported %v, %d slots; want done, 15", i, calls[i].err, slots[i])
		}
	}
}

// A batch whose COMMIT is lost on the way left its transaction open, silent, on the server:
// the server is asked, the transaction ended, and once it is known to have stored nothing the
// batch runs again, each call applied once (a batch of one call too).
func TestLostCommitIsRunAgain(t *testing.T) {
	defer SetOpTimeout(5 * time.Second)() // bounds the failing run
	// The server's own end of an idle transaction (2 s in the group commit's) would end it
	// too, without the outcome's termination.
	defer SetLockHoldIdleTimeout(time.Minute)()
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			calls, slots := renewals(t, n, func(p *commitCutter) *atomic.Bool { p.drop.Store(true); return &p.drop })
			for i := range calls {
				if calls[i].err != nil || slots[i] != 15 {
					t.Errorf("user %d: renewal whose COMMIT was lost: %v, %d slots; want done, 15", i, calls[i].err, slots[i])
				}
			}
		})
	}
}

// A COMMIT answered by a FATAL error is no answer: the session ended, maybe after the commit.
// PgBouncer answers so when its connection to the server fails while the COMMIT is on it
// (the answer lost between the two), as does a server shut down (57P01) right after a commit.
// Taken for a refusal, the batch's renewals ran again one by one (credited twice), or the one
// call failed though stored (the client sends it again).
func TestFatalCommitAnswerIsAsked(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			calls, slots := renewals(t, n, func(p *commitCutter) *atomic.Bool { p.fatal.Store(true); return &p.fatal })
			for i := range calls {
				if calls[i].err != nil || slots[i] != 15 {
					t.Errorf("user %d: committed renewal answered FATAL: %v, %d slots; want done, 15", i, calls[i].err, slots[i])
				}
			}
		})
	}
}

// requireSyncStandby makes every commit on the database at url wait for a synchronous standby
// that never connects, and returns once it does.
func requireSyncStandby(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	// The reload reaches the server's processes in their own time: probe until a commit waits.
	// (The bound only keeps a failing test from hanging.)
	for deadline := time.Now().Add(20 * time.Second); ; {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := pgx.BeginFunc(pctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(pctx, `UPDATE teos_schema SET version = version`)
			return err
		})
		cancel()
		if err != nil && pctx.Err() != nil {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("commits do not wait for the synchronous standby")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Under synchronous replication a COMMIT is answered once the standby has it. One whose answer
// did not come in time was cut short (the client's cancel on its timeout, or the outcome's
// termination of the backend): the server then commits locally, unreplicated. Reporting it
// done acknowledged a renewal that a failover to the standby loses.
func TestUnreplicatedCommitIsNotDone(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	direct := srv.NewDatabase(t)
	s, err := Open(context.Background(), direct, &Options{Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	user := teos.UserID{2, 1}
	if _, err := s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	requireSyncStandby(t, direct)
	defer func(old time.Duration) { opTimeout = old }(opTimeout)
	opTimeout = 2 * time.Second

	c := &committer{pool: s.pool, maxBatch: 10}
	call := &writeCall{done: make(chan struct{}), fn: func(ctx context.Context, tx pgx.Tx) error {
		prev, _, err := getUser(ctx, tx, user, true)
		if err != nil {
			return err
		}
		prev.AvailableSlots += 5
		_, err = tx.Exec(ctx, putUserSQL, userArgs(user, prev)...)
		return err
	}}
	c.commit([]*writeCall{call})
	got, _, err := s.User(user)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("renewal: %v; %d slots on the primary", call.err, got.AvailableSlots)
	if !errors.Is(call.err, errCommitUnknown) {
		t.Errorf("a renewal the synchronous standby never confirmed: %v; want errCommitUnknown", call.err)
	}
}

// Behind PgBouncer the protocol's process id is PgBouncer's, not the backend's: the outcome
// must end the backend holding the lost COMMIT's transaction by its own pid (pg_backend_pid),
// else that transaction stays open until the server's idle timeout and the
// renewal fails with its outcome unknown.
func TestLostCommitBehindPooler(t *testing.T) {
	defer func(old time.Duration) { opTimeout = old }(opTimeout)
	opTimeout = 3 * time.Second // bounds the failing run
	// The server's own end of an idle transaction (2 s in the group commit's) would end it
	// too, without the outcome's termination.
	defer SetLockHoldIdleTimeout(time.Minute)()
	calls, slots := renewals(t, 1, func(p *commitCutter) *atomic.Bool {
		p.fakeKeys.Store(true)
		p.drop.Store(true)
		return &p.drop
	})
	if calls[0].err != nil || slots[0] != 15 {
		t.Errorf("renewal whose COMMIT was lost behind a pooler: %v, %d slots; want done, 15", calls[0].err, slots[0])
	}
}
