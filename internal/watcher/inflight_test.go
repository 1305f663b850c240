package watcher

import (
	"sync"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// pausingStore pauses every add's write transaction right after its locator-cache check
// (inside the transaction, holding the store's writer lock) until release is closed.
type pausingStore struct {
	*store.Store
	checked chan struct{}
	release chan struct{}
}

func (s *pausingStore) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	for i := range items {
		inner := items[i].HandOver
		var once sync.Once
		items[i].HandOver = func() *store.HandOver {
			h := inner()
			once.Do(func() { s.checked <- struct{}{}; <-s.release })
			return h
		}
	}
	return s.Store.UpsertAppointments(items)
}

// pausedAdd starts an add of b for u on f's watcher, whose store is ps, and returns once the
// add checked the locator cache inside its paused transaction; the channel receives the
// add's error once it is released.
func pausedAdd(t *testing.T, f *fixture, ps *pausingStore, u testUser, b breachCase) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		a := teos.Appointment{Locator: b.loc, EncryptedBlob: b.blob, ToSelfDelay: 42}
		_, err := f.w.AddAppointment(a, wtcrypto.SignMessage(a.SignedBytes(), u.sk))
		done <- err
	}()
	select {
	case <-ps.checked:
	case err := <-done:
		t.Fatalf("add finished without reaching its cache check: %v", err)
	}
	return done
}

func withPausingStore(f *fixture) *pausingStore {
	ps := &pausingStore{Store: f.store, checked: make(chan struct{}, 1), release: make(chan struct{})}
	f.w.store = ps
	return ps
}

// An add that checked the cache before the block mining its dispute was cached, and has not
// committed, is found by that block: the block waits for the add's transaction.
func TestBlockWaitsForARacingAdd(t *testing.T) {
	f := newFixture(t)
	ps := withPausingStore(f)
	u, b := f.newUser(), newBreach(7)
	added := pausedAdd(t, f, ps, u, b)

	blk := f.block(b.dispute)
	connected := make(chan error, 1)
	go func() { connected <- f.w.BlockConnected(t.Context(), blk, testHeight+1) }()
	// Give the block the chance to look its locators up before the add commits (it must not).
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-connected:
		t.Fatalf("the block was done (%v) before the racing add's write", err)
	default:
	}
	close(ps.release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if err := <-connected; err != nil {
		t.Fatal(err)
	}
	f.tip = blk.BlockHash()
	id := uuid(b.loc, u)
	if f.resp.callCount(id) != 1 || !f.hasTracker(id) {
		t.Fatalf("the racing add's breach was handed over %d times (tracker stored: %v), want once by the block",
			f.resp.callCount(id), f.hasTracker(id))
	}
	if len(f.queued()) != 0 {
		t.Error("the add saw no block, yet queued a hand-over")
	}
}

// A block none of whose locators a write in flight checked does not wait for the store's
// writes: under load that wait is an add batch's commit and fsync.
func TestBlockDoesNotWaitForUnrelatedAdds(t *testing.T) {
	f := newFixture(t)
	ps := withPausingStore(f)
	u, pending, other := f.newUser(), newBreach(7), newBreach(8)
	added := pausedAdd(t, f, ps, u, pending)
	defer func() {
		close(ps.release)
		if err := <-added; err != nil {
			t.Error(err)
		}
	}()

	connected := make(chan error, 1)
	go func() { connected <- f.w.BlockConnected(t.Context(), f.block(other.dispute), testHeight+1) }()
	select {
	case err := <-connected:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // the paused add holds the writer lock: a wait never ends
		t.Fatal("the block waited for an add whose locator it does not hold")
	}
}
