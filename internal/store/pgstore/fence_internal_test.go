package pgstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
)

// A new term waits for the old leader's write in flight, which commits in its own term; the
// old leader's next write is refused.
func TestNewTermWaitsForLeaderWrites(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	s, err := Open(context.Background(), url, &Options{Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	old, next := connect(), connect()
	term, err := NewTerm(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{}, 1)
	s.Fence(term, func() { lost <- struct{}{} })

	inTx, release, wrote := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before s.Close, which waits for the write's connection
	go func() {
		wrote <- s.leaderTx(ctx, func(tx pgx.Tx) error {
			close(inTx)
			<-release
			_, err := tx.Exec(ctx, `INSERT INTO last_block VALUES (1, $1, 7)`, []byte("0123456789abcdef0123456789abcdef"))
			return err
		})
	}()
	<-inTx
	type result struct {
		term int64
		err  error
	}
	started := make(chan result, 1)
	go func() {
		n, err := NewTerm(ctx, next)
		started <- result{n, err}
	}()
	// Wait until the new term waits for the row lock.
	pid := next.PgConn().PID()
	for {
		var waiting bool
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1`,
			pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case r := <-started:
			t.Fatalf("a new term (%d, %v) started while the leader's write was in flight", r.term, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	free()
	if err := <-wrote; err != nil {
		t.Fatalf("the write in flight: %v", err)
	}
	r := <-started
	if r.err != nil || r.term != term+1 {
		t.Fatalf("new term = %d, %v; want %d", r.term, r.err, term+1)
	}
	if err := s.SetLastBlock(chainhash.Hash{8}, 8); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the old leader's next write = %v; want ErrNotLeader", err)
	}
	select {
	case <-lost:
	default:
		t.Fatal("lost was not called")
	}
	if _, h, ok, err := s.LastBlock(); err != nil || !ok || h != 7 {
		t.Fatalf("last block height = %d, %v, %v; want the write in flight's 7", h, ok, err)
	}
}
