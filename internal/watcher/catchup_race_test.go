package watcher

import (
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// queueingStore holds every add before its write transaction begins until release is closed,
// as a long group-commit queue does under load.
type queueingStore struct {
	*store.Store
	queued  chan struct{}
	release chan struct{}
}

func (s *queueingStore) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	s.queued <- struct{}{}
	<-s.release
	return s.Store.UpsertAppointments(items)
}

// An add that read its start height and then waited in the store's queue while a catch-up
// connected the block mining its dispute and CacheBlocks more (so the block left the locator
// cache before the add's transaction checked it) is still handed over: the block found no
// appointment, and the add found no cached dispute.
func TestAddQueuedThroughACatchUpIsHandedOver(t *testing.T) {
	f := newFixture(t)
	u, b := f.newUser(), newBreach(11)
	qs := &queueingStore{Store: f.store, queued: make(chan struct{}, 1), release: make(chan struct{})}
	f.w.store = qs

	added := make(chan error, 1)
	go func() {
		a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
		_, err := f.w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), u.sk))
		added <- err
	}()
	<-qs.queued

	caughtUp := make(chan error, 1)
	go func() {
		for i := range CacheBlocks + 1 {
			var blk *wire.MsgBlock
			if i == 0 {
				blk = f.block(b.dispute)
			} else {
				blk = f.block()
			}
			if err := f.w.BlockConnected(t.Context(), blk, testHeight+f.nonce); err != nil {
				caughtUp <- err
				return
			}
			f.tip = blk.BlockHash()
		}
		caughtUp <- nil
	}()
	// Release the add once the catch-up is over, or once it had the chance to be (a block may
	// rightly wait for the add).
	select {
	case err := <-caughtUp:
		if err != nil {
			t.Fatal(err)
		}
		caughtUp <- nil
	case <-time.After(200 * time.Millisecond):
	}
	close(qs.release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if err := <-caughtUp; err != nil {
		t.Fatal(err)
	}
	f.handOverQueued()
	id := uuid(b.loc, u)
	if !f.hasTracker(id) || f.resp.callCount(id) != 1 {
		t.Fatalf("acknowledged appointment handed over %d times (tracker stored: %v), want once",
			f.resp.callCount(id), f.hasTracker(id))
	}
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("hand-overs left queued: %v", q)
	}
}

// An add whose dispute was mined in a cached block before the add began, and which then waited
// in the store's queue while CacheBlocks more blocks were connected (evicting that block
// before the add's transaction checked the cache), is still handed over: the block's lookup ran
// before the add, so the add is the only one that can find the breach.
func TestAddQueuedWhileItsDisputeBlockIsEvicted(t *testing.T) {
	t.Run("connected", func(t *testing.T) { testAddQueuedWhileEvicted(t, false) })
	// A shared database's follower only seeds its cache with the blocks it sees.
	t.Run("seeded", func(t *testing.T) { testAddQueuedWhileEvicted(t, true) })
}

func testAddQueuedWhileEvicted(t *testing.T, seeded bool) {
	f := newFixture(t)
	u, b := f.newUser(), newBreach(12)
	connect := func(txs ...*wire.MsgTx) {
		if !seeded {
			f.connect(txs...)
			return
		}
		blk := f.block(txs...)
		f.w.SeedBlock(blk)
		f.tip = blk.BlockHash()
	}
	connect(b.dispute) // mined just before the add: in the locator cache
	qs := &queueingStore{Store: f.store, queued: make(chan struct{}, 1), release: make(chan struct{})}
	f.w.store = qs

	added := make(chan error, 1)
	go func() {
		a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
		_, err := f.w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), u.sk))
		added <- err
	}()
	<-qs.queued
	for range CacheBlocks { // none holds the add's locator: none waits for it
		connect()
	}
	close(qs.release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	f.handOverQueued()
	id := uuid(b.loc, u)
	if !f.hasTracker(id) || f.resp.callCount(id) != 1 {
		t.Fatalf("acknowledged appointment handed over %d times (tracker stored: %v), want once",
			f.resp.callCount(id), f.hasTracker(id))
	}
}
