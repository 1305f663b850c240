package pgstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// v2WithLndUpdates turns a fresh database back into what version 2 wrote, holding sessions lnd
// sessions and updates updates spread over them.
func v2WithLndUpdates(t *testing.T, url string, sessions, updates int) {
	t.Helper()
	s := open(t, url, "regtest")
	defer s.Close()
	_, err := s.Pool().Exec(context.Background(), fmt.Sprintf(`ALTER TABLE lnd_sessions DROP COLUMN n_updates;
		DROP TABLE leader_term, recent_txs;
		UPDATE teos_schema SET version = 2;
		INSERT INTO lnd_sessions SELECT int8send(g), '\x00' FROM generate_series(1, %d) g;
		INSERT INTO lnd_updates SELECT int8send(g), int8send(g %% %d + 1), '\x00' FROM generate_series(1, %d) g`,
		sessions, sessions, updates))
	if err != nil {
		t.Fatal(err)
	}
}

// holdLndUpdates locks lnd_updates until the returned release, so that the 2 -> 3 migration,
// which reads it, waits; waitBlocked returns once a session waits for it.
func holdLndUpdates(t *testing.T, url string) (waitBlocked func(), release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE lnd_updates IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	waitBlocked = func() {
		t.Helper()
		for {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
				WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND c.relname = 'lnd_updates' AND NOT l.granted`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return waitBlocked, func() {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

type openResult struct {
	s   *pgstore.Store
	err error
}

// TestMigrationOutlivesOpTimeout: a schema migration takes as long as the data asks (the lnd
// counts' backfill took 4.9 s per 3M updates), not the bound of one ordinary operation: a
// migration longer than that bound would fail at every start, and teosd would never start
// again after the upgrade.
func TestMigrationOutlivesOpTimeout(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	const sessions, updates = 1000, 100_000
	v2WithLndUpdates(t, url, sessions, updates)
	waitBlocked, release := holdLndUpdates(t, url)

	const op = time.Second
	defer pgstore.SetOpTimeout(op)()
	defer pgstore.SetMigrateLogEvery(op / 2)()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	res := make(chan openResult, 1)
	go func() {
		s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest", Log: log})
		res <- openResult{s, err}
	}()
	waitBlocked()
	// Another instance starting meanwhile waits for that migration as long as it runs.
	var logs2 syncBuffer
	res2 := make(chan openResult, 1)
	go func() {
		s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest",
			Log: slog.New(slog.NewTextHandler(&logs2, nil))})
		res2 <- openResult{s, err}
	}()
	// The migration runs (here: waits) for three times the operation bound.
	select {
	case r := <-res:
		t.Fatalf("Open returned while its migration was still running: %v", r.err)
	case r := <-res2:
		t.Fatalf("the second Open returned while the first's migration was still running: %v", r.err)
	case <-time.After(3 * op):
	}
	release()
	r := <-res
	if r.err != nil {
		t.Fatalf("Open with a migration longer than the operation bound: %v", r.err)
	}
	defer r.s.Close()
	r2 := <-res2
	if r2.err != nil {
		t.Fatalf("Open waiting for another instance's migration: %v", r2.err)
	}
	defer r2.s.Close()
	if !strings.Contains(logs2.String(), "waiting for another teosd instance's schema work") {
		t.Errorf("the waiting instance did not say why: %s", logs2.String())
	}
	lndCounts(t, r.s, sessions, updates)
	// The operator sees why the start takes long: a line at the start, while it runs, at the end.
	out := logs.String()
	for _, want := range []string{`msg="migrating the PostgreSQL schema`, `msg="still migrating the PostgreSQL schema" from=2 to=5`,
		`msg="PostgreSQL schema migrated" from=2 to=5`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestMigrationCancelled: stopping teosd (its context cancelled) in the middle of a migration
// leaves the schema as it was, and the next start migrates it.
func TestMigrationCancelled(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	v2WithLndUpdates(t, url, 10, 100)
	waitBlocked, release := holdLndUpdates(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan openResult, 1)
	go func() {
		s, err := pgstore.Open(ctx, url, &pgstore.Options{Network: "regtest"})
		res <- openResult{s, err}
	}()
	waitBlocked()
	cancel()
	r := <-res
	if r.err == nil {
		r.s.Close()
		t.Fatal("Open succeeded though cancelled mid-migration")
	}
	release()

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var version, cols int
	var term *string
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT version FROM teos_schema),
		(SELECT count(*) FROM information_schema.columns WHERE table_name = 'lnd_sessions' AND column_name = 'n_updates'),
		to_regclass('leader_term')::text`).Scan(&version, &cols, &term); err != nil {
		t.Fatal(err)
	}
	if version != 2 || cols != 0 || term != nil {
		t.Fatalf("after a cancelled migration: version %d, n_updates columns %d, leader_term %v; want 2, 0, none", version, cols, term)
	}
	s := open(t, url, "regtest")
	defer s.Close()
	lndCounts(t, s, 10, 100)
}
