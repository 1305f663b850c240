package pgstore_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// BenchmarkLndAddUpdate: durable lnd state updates (one transaction each, as wtserver makes
// them), bbolt vs PostgreSQL, both with fsync; clients each on their own session, 8 at once.
func BenchmarkLndAddUpdate(b *testing.B) {
	engines := map[string]func(b *testing.B) store.LndRecords{
		"bolt": func(b *testing.B) store.LndRecords {
			s, err := store.Open(filepath.Join(b.TempDir(), "teos.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(b *testing.B) store.LndRecords {
			srv := pgtest.Start(b, nil)
			s, err := pgstore.Open(context.Background(), srv.NewDatabase(b), &pgstore.Options{Network: "regtest"})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, name := range []string{"bolt", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := engines[name](b)
			var next atomic.Uint64
			blob := make([]byte, 300)
			b.SetParallelism(4) // 8 clients on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var id store.LndSessionID
				id[0] = 3
				binary.BigEndian.PutUint64(id[1:], next.Add(1))
				if err := s.LndPutSession(id, []byte{0}, nil); err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					n := next.Add(1)
					var hint store.LndHint
					binary.BigEndian.PutUint64(hint[:], n)
					err := s.LndAddUpdate(id, hint, func(prev []byte) ([]byte, []byte, error) {
						return prev, blob, nil
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLndCounts: 100,000 updates in 1,000 sessions (bulk-loaded, then vacuumed and
// analysed, so the old query gets its best plan); "count_star" is the query LndCounts ran
// before schema version 3, "n_updates" is LndCounts now.
func BenchmarkLndCounts(b *testing.B) {
	const sessions, perSession = 1000, 100
	srv := pgtest.Start(b, &pgtest.Options{NoFsync: true})
	s, err := pgstore.Open(context.Background(), srv.NewDatabase(b), &pgstore.Options{Network: "regtest"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO lnd_sessions (session_id, record, n_updates)
			SELECT '\x03'::bytea || int8send(i), '\x01'::bytea, $2 FROM generate_series(1::bigint, $1::bigint) i`,
		`INSERT INTO lnd_updates
			SELECT int8send(i * $2 + j) || int8send(0::bigint), '\x03'::bytea || int8send(i), decode(repeat('ab', 300), 'hex')
			FROM generate_series(1::bigint, $1::bigint) i, generate_series(1::bigint, $2::bigint) j`,
	} {
		if _, err := s.Pool().Exec(ctx, q, sessions, perSession); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{`VACUUM ANALYZE lnd_sessions`, `VACUUM ANALYZE lnd_updates`} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("count_star", func(b *testing.B) {
		for b.Loop() {
			var n, u int64
			if err := s.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM lnd_sessions), (SELECT count(*) FROM lnd_updates)`).Scan(&n, &u); err != nil ||
				n != sessions || u != sessions*perSession {
				b.Fatalf("%d, %d, %v", n, u, err)
			}
		}
	})
	b.Run("n_updates", func(b *testing.B) {
		for b.Loop() {
			if n, u, err := s.LndCounts(); err != nil || n != sessions || u != sessions*perSession {
				b.Fatalf("%d, %d, %v", n, u, err)
			}
		}
	})
}
