package watcher

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// trackAll accepts every breach.
type trackAll struct{ calls atomic.Int64 }

func (*trackAll) BlockInChain(context.Context, chainhash.Hash) (bool, error) { return true, nil }

func (r *trackAll) HandleBreach(_ context.Context, id teos.UUID, _, _ *wire.MsgTx) (*store.Tracker, error) {
	r.calls.Add(1)
	return &store.Tracker{UUID: id}, nil
}

// discardChanges stores no tracker, so each iteration redoes the same work.
type discardChanges struct{ *store.Store }

func (discardChanges) ApplyChanges(*store.Changes) error { return nil }

// BenchmarkBlockConnected measures one 4,000-transaction block against 100,000 stored
// appointments, with no breach and with a few.
func BenchmarkBlockConnected(b *testing.B) {
	const stored, perBlock, users, writers = 100_000, 4_000, 100, 1000
	s, err := store.Open(filepath.Join(b.TempDir(), "teos.db"),
		&store.Options{NoSync: true, MaxBatchSize: writers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })

	userIDs := make([]teos.UserID, users)
	for i := range userIDs {
		userIDs[i][0] = 0x02
		binary.BigEndian.PutUint64(userIDs[i][1:], uint64(i))
		_, err := s.UpdateUser(userIDs[i], func(store.UserInfo, bool) (store.UserInfo, error) {
			return store.UserInfo{AvailableSlots: ^uint32(0), SubscriptionExpiry: ^uint32(0)}, nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	keep := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	put := func(a *store.Appointment) error { _, err := s.UpsertAppointment(a, keep); return err }

	// Many concurrent writers share bbolt batches, so the fill takes seconds, not minutes.
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			blob := make([]byte, 200)
			for i := w; i < stored; i += writers {
				var loc teos.Locator
				binary.BigEndian.PutUint64(loc[:], uint64(i)*0x9e3779b97f4a7c15)
				binary.BigEndian.PutUint64(loc[8:], uint64(i))
				if err := put(&store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: blob}, UserID: userIDs[i%users]}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("fill took %v", time.Since(t0))
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}

	// Two blocks of perBlock transactions; the second mines the disputes of 10 appointments.
	const matches = 10
	newBlock := func(nonce uint32, disputes []*wire.MsgTx) *wire.MsgBlock {
		blk := wire.NewMsgBlock(wire.NewBlockHeader(1, &chainhash.Hash{}, &chainhash.Hash{}, 0, nonce))
		blk.Transactions = append(blk.Transactions, disputes...)
		for i := len(disputes); i < perBlock; i++ {
			blk.Transactions = append(blk.Transactions, newTx(nonce<<16|uint32(i)))
		}
		return blk
	}
	var disputes []*wire.MsgTx
	for i := range matches {
		bc := newBreach(uint32(0xd0000 + i))
		if err := put(&store.Appointment{Appointment: teos.Appointment{Locator: bc.loc, EncryptedBlob: bc.blob}, UserID: userIDs[i]}); err != nil {
			b.Fatal(err)
		}
		disputes = append(disputes, bc.dispute)
	}

	resp := &trackAll{}
	w := New(Config{Store: discardChanges{s}, Responder: resp})
	for _, bc := range []struct {
		name    string
		block   *wire.MsgBlock
		matches int64
	}{
		{"no_matches", newBlock(1, nil), 0},
		{fmt.Sprintf("%d_matches", matches), newBlock(2, disputes), matches},
	} {
		b.Run(bc.name, func(b *testing.B) {
			resp.calls.Store(0)
			b.ReportAllocs()
			for b.Loop() {
				if err := w.BlockConnected(b.Context(), bc.block, 1000); err != nil {
					b.Fatal(err)
				}
			}
			if got, want := resp.calls.Load(), int64(b.N)*bc.matches; got != want {
				b.Fatalf("%d breaches handed over in %d blocks, want %d", got, b.N, want)
			}
		})
	}
}
