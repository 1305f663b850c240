package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/pkg/teos"
)

// minedBlock is a block on prev whose transactions spend made-up outpoints tagged with seed.
func minedBlock(prev *wire.MsgBlock, seed byte, n int) *wire.MsgBlock {
	b := wire.NewMsgBlock(&wire.BlockHeader{Nonce: uint32(seed)})
	if prev != nil {
		b.Header.PrevBlock = prev.BlockHash()
	}
	for i := range n {
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Hash: [32]byte{seed, byte(i)}}})
		tx.AddTxOut(&wire.TxOut{Value: int64(i + 1), PkScript: []byte{0x51}})
		_ = b.AddTransaction(tx)
	}
	return b
}

func locatorOf(tx *wire.MsgTx) teos.Locator { return teos.NewLocator(tx.TxHash()) }

// addLate stores an appointment for loc through s as an instance whose locator cache does not
// hold the dispute (HandOver gives nothing), and returns its UUID and the store's result.
func addLate(t *testing.T, s *pgstore.Store, user teos.UserID, loc teos.Locator) (teos.UUID, store.UpsertResult) {
	t.Helper()
	ap := &store.Appointment{Appointment: teos.Appointment{Locator: loc, EncryptedBlob: []byte{1}}, UserID: user}
	res, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: ap, Policy: free,
		HandOver: func() *store.HandOver { return nil }}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("add: %v, %v", err, res)
	}
	return ap.UUID(), res[0]
}

func free(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }

func newUserIn(t *testing.T, s *pgstore.Store, tag byte) teos.UserID {
	t.Helper()
	var u teos.UserID
	u[0], u[1] = 2, tag
	if _, err := s.UpdateUser(u, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 100, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

func queuedFor(t *testing.T, s *pgstore.Store, id teos.UUID) *store.QueuedHandOver {
	t.Helper()
	list, err := s.QueuedHandOvers()
	if err != nil {
		t.Fatal(err)
	}
	for i := range list {
		if list[i].UUID == id {
			return &list[i]
		}
	}
	return nil
}

// TestLaggingInstanceQueuesPublishedDispute: the leader published a block (MinedTxs, before
// its look-up); another instance whose cache lacks that block acknowledges an appointment for
// one of its transactions: the add's own transaction queues the hand-over, with the dispute
// and its block, for the leader. Appointments for other locators, for a block withdrawn in a
// reorg, or for a block older than the kept depth queue nothing.
func TestLaggingInstanceQueuesPublishedDispute(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	leader, follower := open(t, url, "regtest"), open(t, url, "regtest")
	defer leader.Close()
	defer follower.Close()
	ctx := context.Background()
	mined := leader.MinedTxs(3)
	user := newUserIn(t, follower, 1)

	b1 := minedBlock(nil, 1, 4)
	if err := mined.BlockConnected(ctx, b1, 101); err != nil {
		t.Fatal(err)
	}
	dispute := b1.Transactions[2]
	id, res := addLate(t, follower, user, locatorOf(dispute))
	if !res.Queued {
		t.Fatal("the add did not report the hand-over it queued")
	}
	q := queuedFor(t, leader, id)
	if q == nil {
		t.Fatal("no hand-over queued for an appointment whose dispute the leader published")
	}
	var want bytes.Buffer
	_ = dispute.Serialize(&want)
	if q.Block != b1.BlockHash() || !bytes.Equal(q.Dispute, want.Bytes()) || q.Appointment == nil {
		t.Fatalf("queued hand-over: block %s, dispute %x; want %s, %x", q.Block, q.Dispute, b1.BlockHash(), want.Bytes())
	}
	if other, res := addLate(t, follower, user, teos.Locator{0xee}); res.Queued || queuedFor(t, leader, other) != nil {
		t.Fatal("a hand-over was queued for a locator in no published block")
	}

	// A reorg withdraws b1 (the leader disconnects it first) and b1' takes its height.
	if err := mined.BlockDisconnected(ctx, &b1.Header, 101); err != nil {
		t.Fatal(err)
	}
	if id2, res := addLate(t, follower, newUserIn(t, follower, 2), locatorOf(b1.Transactions[1])); res.Queued || queuedFor(t, leader, id2) != nil {
		t.Fatal("a hand-over was queued for a withdrawn block")
	}
	b1b := minedBlock(nil, 9, 2)
	chain := []*wire.MsgBlock{b1b}
	for i := range 3 {
		chain = append(chain, minedBlock(chain[len(chain)-1], byte(10+i), 2))
	}
	for i, b := range chain {
		if err := mined.BlockConnected(ctx, b, uint32(101+i)); err != nil {
			t.Fatal(err)
		}
	}
	// Kept: the newest 3 (102..104); b1b at 101 is now too old, like a locator cache's.
	if _, res := addLate(t, follower, newUserIn(t, follower, 3), locatorOf(b1b.Transactions[0])); res.Queued {
		t.Fatal("a hand-over was queued for a block older than the kept depth")
	}
	if _, res := addLate(t, follower, newUserIn(t, follower, 4), locatorOf(chain[1].Transactions[1])); !res.Queued {
		t.Fatal("no hand-over for a dispute in the oldest kept block")
	}
	var n int
	if err := leader.Pool().QueryRow(ctx, `SELECT count(DISTINCT block) FROM recent_txs`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("published blocks: %d, %v; want 3", n, err)
	}
}

// TestPublicationWaitsForAddsInFlight: an add whose transaction is open when the leader
// publishes a block is waited for, so the leader's look-up after the publication sees it; an
// add that starts while the publication waits sees the published block and queues its
// hand-over. Either way the appointment is not left without both.
func TestPublicationWaitsForAddsInFlight(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	leader, follower := open(t, url, "regtest"), open(t, url, "regtest")
	defer leader.Close()
	defer follower.Close()
	ctx := context.Background()
	user := newUserIn(t, follower, 1)
	block := minedBlock(nil, 1, 3)
	locA, locB := locatorOf(block.Transactions[1]), locatorOf(block.Transactions[2])

	// Add A is in its transaction, policy running, when the publication starts.
	inPolicy, release := make(chan struct{}), make(chan struct{})
	apA := &store.Appointment{Appointment: teos.Appointment{Locator: locA, EncryptedBlob: []byte{1}}, UserID: user}
	addA := make(chan store.UpsertResult, 1)
	go func() {
		res, err := follower.UpsertAppointments([]store.AppointmentUpsert{{Appointment: apA,
			Policy: func(u store.UserInfo, p *store.Appointment, trig bool) (store.UserInfo, error) {
				close(inPolicy)
				<-release
				return u, nil
			},
			HandOver: func() *store.HandOver { return nil }}})
		if err != nil {
			res = []store.UpsertResult{{Err: err}}
		}
		addA <- res[0]
	}()
	<-inPolicy
	published := make(chan error, 1)
	go func() { published <- leader.MinedTxs(6).BlockConnected(ctx, block, 101) }()
	waitLockWaiters(t, leader, 1) // the publication waits for add A
	select {
	case err := <-published:
		t.Fatalf("the publication committed while an add was in flight: %v", err)
	default:
	}
	// Add B starts now, through another instance, and waits behind the publication.
	other := open(t, url, "regtest")
	defer other.Close()
	addB := make(chan store.UpsertResult, 1)
	var idB teos.UUID
	go func() {
		id, res := addLate(t, other, user, locB)
		idB = id
		addB <- res
	}()
	waitLockWaiters(t, leader, 2)
	close(release)
	resA := <-addA
	if resA.Err != nil {
		t.Fatal(resA.Err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	resB := <-addB
	// The leader's look-up, after the publication, finds A; B found the published block.
	found, err := leader.AppointmentsByLocators([]teos.Locator{locA})
	if err != nil || len(found[locA]) != 1 {
		t.Fatalf("the look-up after the publication misses add A: %v, %v", found, err)
	}
	if resA.Queued {
		t.Fatal("add A queued a hand-over though it looked before the publication")
	}
	if !resB.Queued || queuedFor(t, leader, idB) == nil {
		t.Fatal("add B, which waited for the publication, queued no hand-over")
	}
}

// waitLockWaiters waits until n sessions wait for the adds' and publications' advisory lock.
func waitLockWaiters(t *testing.T, s *pgstore.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var got int
		if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions wait for the advisory lock, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublicationGivesUpOnAStuckAdd: an add transaction that stays open (its instance gone
// silent mid-transaction) does not hold the leader's block, nor every other instance's adds
// queued behind the publication, until the server ends that session: the publication gives
// up after publishLockWait, the adds go on, and the block's next try publishes it.
func TestPublicationGivesUpOnAStuckAdd(t *testing.T) {
	defer pgstore.SetPublishLockWait(300 * time.Millisecond)()
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	leader, follower := open(t, url, "regtest"), open(t, url, "regtest")
	defer leader.Close()
	defer follower.Close()
	ctx := context.Background()
	user := newUserIn(t, follower, 1)
	stuck, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close(ctx)
	tx, err := stuck.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, pgstore.MinedLockKey); err != nil {
		t.Fatal(err)
	}
	block := minedBlock(nil, 1, 2)
	mined := leader.MinedTxs(6)
	// Given up on the lock (55P03), not after the operation's own 30 s bound.
	if err := mined.BlockConnected(ctx, block, 101); err == nil {
		t.Fatal("the block was published while an add transaction was open")
	} else if pe, ok := errors.AsType[*pgconn.PgError](err); !ok || pe.Code != "55P03" {
		t.Fatalf("publication with an add stuck: %v; want a lock timeout", err)
	}
	if _, res := addLate(t, follower, user, locatorOf(block.Transactions[0])); res.Queued {
		t.Fatal("the publication that gave up left its rows")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mined.BlockConnected(ctx, block, 101); err != nil {
		t.Fatalf("the next try: %v", err)
	}
	if _, res := addLate(t, follower, user, locatorOf(block.Transactions[1])); !res.Queued {
		t.Fatal("no hand-over after the block was published")
	}
}

// The leader's published block transactions are the chain's, not users' data: they do not
// count toward max_stored_bytes (a mainnet block would take megabytes of the cap).
func TestPublishedBlocksNotStoredBytes(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	before, err := s.StoredBytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MinedTxs(6).BlockConnected(context.Background(), minedBlock(nil, 1, 2000), 200); err != nil {
		t.Fatal(err)
	}
	after, err := s.StoredBytes()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("stored bytes %d after publishing a block, %d before", after, before)
	}
}
