package responder

import (
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/internal/carrier"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestWithBTCD follows breaches through a real btcd node with the production carrier: one
// penalty from broadcast to completion, one already mined before the tower saw its breach.
func TestWithBTCD(t *testing.T) {
	node := btcdtest.Start(t)
	client := node.Client(t)
	ctx := t.Context()
	live, early := node.NewBreach(t), node.NewBreach(t)

	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	user := teos.UserID{0x02, 0x42}
	if _, err := s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionStart: 1, SubscriptionExpiry: 100_000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	appoint := func(b *btcdtest.Breach) teos.UUID {
		a := &store.Appointment{
			Appointment: teos.Appointment{Locator: teos.NewLocator(b.Commitment.TxHash()), EncryptedBlob: make([]byte, 300)},
			UserID:      user,
		}
		if _, err := s.UpsertAppointment(a, func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
			u.AvailableSlots--
			return u, nil
		}); err != nil {
			t.Fatal(err)
		}
		return a.UUID()
	}
	liveID, earlyID := appoint(live), appoint(early)
	slots := func() uint32 {
		u, _, err := s.User(user)
		if err != nil {
			t.Fatal(err)
		}
		return u.AvailableSlots
	}

	best, err := client.BestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	height, err := client.BlockHeight(ctx, best)
	if err != nil {
		t.Fatal(err)
	}
	car := carrier.New(client, nil)
	r := New(Config{Store: s, Carrier: car}, height)

	// mine mines one block and hands it to the responder, as the chain monitor would; the
	// caller's breach handling runs first, as the watcher's does.
	mine := func(beforeResponder func(block *wire.MsgBlock)) *wire.MsgBlock {
		t.Helper()
		hash := node.Generate(t, 1)[0]
		block, err := client.Block(ctx, *hash)
		if err != nil {
			t.Fatal(err)
		}
		height++
		if beforeResponder != nil {
			beforeResponder(block)
		}
		if err := r.BlockConnected(ctx, block, height); err != nil {
			t.Fatalf("BlockConnected(%d): %v", height, err)
		}
		return block
	}
	send := func(tx *wire.MsgTx) {
		t.Helper()
		if _, err := client.SendRawTransaction(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	status := func(id teos.UUID) *store.Tracker {
		t.Helper()
		tr, err := s.Tracker(id)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}

	// The early penalty is mined with its commitment before the tower hears of the breach.
	send(early.Commitment)
	send(early.Penalty)
	send(live.Commitment)
	mine(func(block *wire.MsgBlock) {
		if !contains(block, live.Commitment.TxHash()) {
			t.Fatal("commitment not mined")
		}
		for _, b := range []struct {
			id teos.UUID
			b  *btcdtest.Breach
		}{{liveID, live}, {earlyID, early}} {
			tr, err := r.HandleBreach(ctx, b.id, b.b.Commitment, b.b.Penalty)
			if err != nil || tr == nil {
				t.Fatalf("HandleBreach = %v, %v", tr, err)
			}
			if err := s.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tr}}); err != nil {
				t.Fatal(err)
			}
		}
	})
	breachHeight := height
	if tr := status(liveID); tr.Confirmed || tr.Height != breachHeight-1 {
		t.Fatalf("live tracker = (%d, %v), want in mempool since %d", tr.Height, tr.Confirmed, breachHeight-1)
	}
	// The early penalty answered -27 and was mined in this very block: dated at it.
	if tr := status(earlyID); !tr.Confirmed || tr.Height != breachHeight {
		t.Fatalf("early tracker = (%d, %v), want confirmed at %d", tr.Height, tr.Confirmed, breachHeight)
	}

	// btcd answers -26 to a second broadcast of a mempool tx; the carrier must call it accepted.
	car.ClearCache()
	if res, err := car.Send(ctx, live.Penalty); err != nil || res.Status != carrier.StatusInMempool {
		t.Fatalf("re-send of a mempool penalty = %+v, %v; want in mempool", res, err)
	}

	block := mine(nil)
	if !contains(block, live.Penalty.TxHash()) {
		t.Fatal("penalty not mined")
	}
	if tr := status(liveID); !tr.Confirmed || tr.Height != height {
		t.Fatalf("live tracker = (%d, %v), want confirmed at %d", tr.Height, tr.Confirmed, height)
	}
	confirmedAt := height

	before := slots()
	for height < breachHeight+teos.IrrevocablyResolved-1 {
		mine(nil)
	}
	if _, err := s.Tracker(earlyID); err != nil {
		t.Fatalf("early tracker gone too soon: %v", err)
	}
	mine(nil)
	if _, err := s.Tracker(earlyID); err == nil {
		t.Fatal("early tracker not completed after 100 blocks")
	}
	if got := slots(); got != before+1 {
		t.Fatalf("slots = %d, want %d", got, before+1)
	}
	for height < confirmedAt+teos.IrrevocablyResolved {
		mine(nil)
	}
	if _, err := s.Appointment(liveID); err == nil {
		t.Fatal("live appointment not completed after 100 confirmations")
	}
	if got := slots(); got != before+2 {
		t.Fatalf("slots = %d, want %d", got, before+2)
	}
}

func contains(block *wire.MsgBlock, txid chainhash.Hash) bool {
	for _, tx := range block.Transactions {
		if tx.TxHash() == txid {
			return true
		}
	}
	return false
}
