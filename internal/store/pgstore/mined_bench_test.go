package pgstore_test

import (
	"context"
	"testing"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// BenchmarkPublishBlock: what publishing a full block's transactions (4,000 of about 400
// bytes, a busy mainnet block) costs the leader's block processing, on a durable server, next
// to the block's look-up (one locator = ANY query) that already ran there.
func BenchmarkPublishBlock(b *testing.B) {
	srv := pgtest.Start(b, nil)
	s, err := pgstore.Open(context.Background(), srv.NewDatabase(b), &pgstore.Options{Network: "regtest"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	blocks := make([]*wire.MsgBlock, 8)
	locs := make([][]teos.Locator, len(blocks))
	for i := range blocks {
		blocks[i] = minedBlock(nil, byte(i), 4000)
		for _, tx := range blocks[i].Transactions {
			tx.TxIn[0].SignatureScript = make([]byte, 220)
			tx.TxOut = append(tx.TxOut, &wire.TxOut{Value: 1, PkScript: make([]byte, 34)}, &wire.TxOut{Value: 2, PkScript: make([]byte, 34)})
			locs[i] = append(locs[i], teos.NewLocator(tx.TxHash()))
		}
	}
	b.Run("lookup", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.AppointmentsByLocators(locs[i%len(locs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("publish", func(b *testing.B) {
		m := s.MinedTxs(6)
		for i := 0; b.Loop(); i++ {
			if err := m.BlockConnected(context.Background(), blocks[i%len(blocks)], uint32(1000+i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A block of a coinbase and one transaction, as in a regtest catch-up.
	small := minedBlock(nil, 99, 2)
	b.Run("publish-2tx", func(b *testing.B) {
		m := s.MinedTxs(6)
		for i := 0; b.Loop(); i++ {
			if err := m.BlockConnected(context.Background(), small, uint32(100000+i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
