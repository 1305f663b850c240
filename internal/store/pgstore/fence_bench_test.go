package pgstore_test

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// BenchmarkSetLastBlock: what the fence costs a block-path write, the smallest of them (the
// tip), against the same write unfenced.
func BenchmarkSetLastBlock(b *testing.B) {
	srv := pgtest.Start(b, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(b)
	s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, fenced := range []bool{false, true} {
		name := map[bool]string{false: "unfenced", true: "fenced"}[fenced]
		b.Run(name, func(b *testing.B) {
			if fenced {
				conn, err := pgx.Connect(context.Background(), url)
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close(context.Background())
				term, err := pgstore.NewTerm(context.Background(), conn)
				if err != nil {
					b.Fatal(err)
				}
				s.Fence(term, nil)
			}
			for i := 0; b.Loop(); i++ {
				if err := s.SetLastBlock(chainhash.Hash{byte(i)}, uint32(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
