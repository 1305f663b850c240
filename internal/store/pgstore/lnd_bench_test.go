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
