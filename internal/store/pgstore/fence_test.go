package pgstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/internal/leader"
	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

func waitLeading(t *testing.T, e *leader.Elector, want bool) {
	t.Helper()
	for {
		got, changed := e.Leading()
		if got == want {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Minute):
			t.Fatalf("%s: leading = %v, want %v", e.Name(), got, want)
		}
	}
}

// TestFencedAfterTakeover: instance A leads; its leadership session dies while its process
// lives and has not noticed; B takes over and makes its decisions. A's next block-path write
// (each kind of them) is refused, leaves B's state as B left it, and makes A step down.
func TestFencedAfterTakeover(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	a, b := open(t, url, "regtest"), open(t, url, "regtest")
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	elect := func(name string, every time.Duration) *leader.Elector {
		e := leader.New(leader.Config{URL: url, Name: name, Every: every, NewTerm: pgstore.NewTerm})
		wg.Go(func() { _ = e.Run(ctx) })
		return e
	}
	// A never checks its session again by itself within the test: only the fence tells it.
	elA := elect("teos-a", time.Hour)
	waitLeading(t, elA, true)
	termA := elA.Term()
	a.Fence(termA, func() { elA.StepDown(termA) })

	var user teos.UserID
	user[0] = 5
	if _, err := a.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	var x, y teos.UUID
	for i, id := range []*teos.UUID{&x, &y} {
		ap := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{byte(i + 1)}, EncryptedBlob: []byte{1}}, UserID: user}
		if _, err := a.UpsertAppointment(ap, free); err != nil {
			t.Fatal(err)
		}
		*id = ap.UUID()
	}
	tracker := func(id teos.UUID, height uint32) *store.Tracker {
		return &store.Tracker{UUID: id, DisputeTx: []byte("d"), PenaltyTx: []byte("p"),
			DisputeTxID: chainhash.Hash{1}, PenaltyTxID: chainhash.Hash{2}, Height: height}
	}
	lndID := teos.UUID{9}
	// A leads: its writes commit.
	if err := a.SetLastBlock(chainhash.Hash{1}, 101); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(x, 101)}}); err != nil {
		t.Fatal(err)
	}
	if err := a.LndPutTracker(tracker(lndID, 101)); err != nil {
		t.Fatal(err)
	}

	elB := elect("teos-b", 20*time.Millisecond)
	tag, err := b.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'teos-a'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("terminate A's leadership session: %v, %d sessions", err, tag.RowsAffected())
	}
	waitLeading(t, elB, true)
	termB := elB.Term()
	if termB <= termA {
		t.Fatalf("B's term %d is not newer than A's %d", termB, termA)
	}
	b.Fence(termB, func() { elB.StepDown(termB) })
	// B's decisions: the tip moves on, x is watched again, y is tracked, the lnd tracker goes.
	if err := b.SetLastBlock(chainhash.Hash{2}, 102); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(y, 102)}, Untracked: []teos.UUID{x}}); err != nil {
		t.Fatal(err)
	}
	if err := b.LndDeleteTrackers([]teos.UUID{lndID}); err != nil {
		t.Fatal(err)
	}
	if l, _ := elA.Leading(); !l {
		t.Fatal("A noticed the lost session by itself: the window under test is gone")
	}

	// A, still believing it leads, replays its older view.
	writes := []struct {
		name string
		fn   func() error
	}{
		{"SetLastBlock", func() error { return a.SetLastBlock(chainhash.Hash{1}, 101) }},
		{"ApplyChanges", func() error {
			return a.ApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(x, 101)}, Completed: []teos.UUID{y}})
		}},
		{"PutTracker", func() error { return a.PutTracker(tracker(x, 101)) }},
		{"DeleteAppointments", func() error { return a.DeleteAppointments([]teos.UUID{y}, true) }},
		{"DeleteOutdatedUsers", func() error { _, err := a.DeleteOutdatedUsers(5000, 0); return err }},
		{"LndPutTracker", func() error { return a.LndPutTracker(tracker(lndID, 101)) }},
		{"LndApplyChanges", func() error {
			return a.LndApplyChanges(&store.Changes{Trackers: []*store.Tracker{tracker(lndID, 101)}})
		}},
		{"LndDeleteTrackers", func() error { return a.LndDeleteTrackers([]teos.UUID{lndID}) }},
	}
	for _, w := range writes {
		if err := w.fn(); !errors.Is(err, pgstore.ErrNotLeader) {
			t.Errorf("A's %s after B took over = %v; want ErrNotLeader", w.name, err)
		}
	}
	waitLeading(t, elA, false) // the refusal made A step down
	if l, _ := elB.Leading(); !l {
		t.Fatal("B lost the leadership")
	}

	// B's state, untouched.
	if hash, height, ok, err := b.LastBlock(); err != nil || !ok || hash != (chainhash.Hash{2}) || height != 102 {
		t.Errorf("last block = %s %d %v %v; want B's", hash, height, ok, err)
	}
	if _, err := b.Tracker(x); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("x's tracker = %v; B removed it", err)
	}
	if tr, err := b.Tracker(y); err != nil || tr.Height != 102 {
		t.Errorf("y's tracker = %+v, %v; want B's", tr, err)
	}
	if _, err := b.Appointment(y); err != nil {
		t.Errorf("y's appointment: %v", err)
	}
	if u, ok, err := b.User(user); err != nil || !ok || u.AvailableSlots != 10 {
		t.Errorf("user = %+v %v %v; want kept with its slots", u, ok, err)
	}
	if _, err := b.LndTracker(lndID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("lnd tracker = %v; B removed it", err)
	}
	// B goes on; A, following, is refused without asking the database.
	if err := b.SetLastBlock(chainhash.Hash{3}, 103); err != nil {
		t.Errorf("B's next write: %v", err)
	}
	a.Fence(0, nil)
	if err := a.SetLastBlock(chainhash.Hash{1}, 101); !errors.Is(err, pgstore.ErrNotLeader) {
		t.Errorf("a follower's SetLastBlock = %v; want ErrNotLeader", err)
	}
}
