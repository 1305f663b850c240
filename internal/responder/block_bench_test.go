package responder_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/responder"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/watcher"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// towerStore is what the watcher and the responder need from the store.
type towerStore interface {
	watcher.Store
	responder.Store
}

// perChange commits every tracker change in a transaction of its own, as the responder and
// the watcher did before their changes were batched per block (one PutTracker per breach and
// per status change, one DeleteAppointments per drop, one for a block's completions).
type perChange struct{ *store.Store }

func (p perChange) ApplyChanges(c *store.Changes) error {
	var each []store.Changes
	for _, t := range c.Trackers {
		each = append(each, store.Changes{Trackers: []*store.Tracker{t}})
	}
	if len(c.Completed) > 0 {
		each = append(each, store.Changes{Completed: c.Completed})
	}
	for _, id := range c.Dropped {
		each = append(each, store.Changes{Dropped: []teos.UUID{id}})
	}
	if len(c.HandedOver) > 0 {
		each = append(each, store.Changes{HandedOver: c.HandedOver})
	}
	for i := range each {
		if err := p.Store.ApplyChanges(&each[i]); err != nil {
			return err
		}
	}
	return nil
}

// acceptAll is a bitcoind that takes every transaction at once.
type acceptAll struct{}

func (acceptAll) Send(context.Context, *wire.MsgTx) (carrier.Result, error) {
	return carrier.Result{Status: carrier.StatusInMempool}, nil
}
func (acceptAll) InMempool(context.Context, chainhash.Hash) (bool, error) { return false, nil }
func (acceptAll) ClearCache()                                             {}

func benchTx(seed uint32, prev chainhash.Hash) *wire.MsgTx {
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&prev, seed%4), nil, [][]byte{bytes.Repeat([]byte{1}, 72), bytes.Repeat([]byte{2}, 33)}))
	tx.AddTxOut(wire.NewTxOut(int64(seed)+1000, bytes.Repeat([]byte{0x51}, 22)))
	return tx
}

func benchBlock(nonce uint32, txs []*wire.MsgTx) *wire.MsgBlock {
	b := wire.NewMsgBlock(wire.NewBlockHeader(1, &chainhash.Hash{}, &chainhash.Hash{}, 0, nonce))
	b.Transactions = append([]*wire.MsgTx{benchTx(nonce, chainhash.Hash{0xcb})}, txs...)
	return b
}

// BenchmarkBlock1000Breaches times teosd's handling of a block that mines 1,000 disputes
// (watcher then responder: 1,000 penalties sent, 1,000 trackers stored) and of the next
// block, which confirms the 1,000 penalties, on a real bbolt file with fsync. per_change is
// the old write pattern, one commit per tracker change; per_block is one commit per block
// and listener.
func BenchmarkBlock1000Breaches(b *testing.B) {
	const breaches, users, height = 1000, 10, 500
	userIDs := make(map[teos.UserID]store.UserInfo, users)
	var ids []teos.UserID
	for i := range users {
		var u teos.UserID
		u[0] = 0x02
		binary.BigEndian.PutUint64(u[1:], uint64(i+1))
		userIDs[u] = store.UserInfo{AvailableSlots: 1 << 20, SubscriptionExpiry: 1 << 30}
		ids = append(ids, u)
	}
	var appts []*store.Appointment
	var disputes, penalties []*wire.MsgTx
	for i := range breaches {
		d := benchTx(uint32(i), chainhash.Hash{0xd1, byte(i), byte(i >> 8)})
		p := benchTx(uint32(i), d.TxHash())
		var buf bytes.Buffer
		_ = p.Serialize(&buf)
		appts = append(appts, &store.Appointment{
			Appointment: teos.Appointment{Locator: teos.NewLocator(d.TxHash()), EncryptedBlob: wtcrypto.Encrypt(buf.Bytes(), d.TxHash()), ToSelfDelay: 42},
			UserID:      ids[i%users],
			StartBlock:  height,
		})
		disputes, penalties = append(disputes, d), append(penalties, p)
	}
	breachBlock, confirmBlock := benchBlock(1, disputes), benchBlock(2, penalties)

	type tower struct {
		s    *store.Store
		w    *watcher.Watcher
		r    *responder.Responder
		conn func(blk *wire.MsgBlock, h uint32)
	}
	var files int
	newTower := func(b *testing.B, wrap func(*store.Store) towerStore) *tower {
		files++
		s, err := store.Open(filepath.Join(b.TempDir(), fmt.Sprintf("teos-%d.db", files)), nil) // fsync on
		if err != nil {
			b.Fatal(err)
		}
		if err := s.BulkLoad(userIDs, appts); err != nil {
			b.Fatal(err)
		}
		ts := wrap(s)
		r := responder.New(responder.Config{Store: ts, Carrier: acceptAll{}}, height)
		w := watcher.New(watcher.Config{Store: ts, Responder: r})
		tw := &tower{s: s, w: w, r: r}
		tw.conn = func(blk *wire.MsgBlock, h uint32) {
			if err := w.BlockConnected(b.Context(), blk, h); err != nil {
				b.Fatal(err)
			}
			if err := r.BlockConnected(b.Context(), blk, h); err != nil {
				b.Fatal(err)
			}
		}
		return tw
	}
	check := func(b *testing.B, tw *tower, confirmed bool) {
		trackers, err := tw.s.Trackers()
		if err != nil || len(trackers) != breaches {
			b.Fatalf("%d trackers, %v; want %d", len(trackers), err, breaches)
		}
		for _, t := range trackers {
			if t.Confirmed != confirmed {
				b.Fatalf("tracker confirmed=%v, want %v", t.Confirmed, confirmed)
			}
		}
	}

	for _, mode := range []struct {
		name string
		wrap func(*store.Store) towerStore
	}{
		{"per_change", func(s *store.Store) towerStore { return perChange{s} }},
		{"per_block", func(s *store.Store) towerStore { return s }},
	} {
		b.Run(mode.name+"/breach_block", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				tw := newTower(b, mode.wrap)
				b.StartTimer()
				tw.conn(breachBlock, height+1)
				b.StopTimer()
				check(b, tw, false)
				_ = tw.s.Close()
				b.StartTimer()
			}
		})
		b.Run(mode.name+"/confirm_block", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				tw := newTower(b, mode.wrap)
				tw.conn(breachBlock, height+1)
				b.StartTimer()
				tw.conn(confirmBlock, height+2)
				b.StopTimer()
				check(b, tw, true)
				_ = tw.s.Close()
				b.StartTimer()
			}
		})
	}
}
