package pgstore_test

import (
	"context"

	"errors"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
	"strings"
	"sync"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/store/storetest"
)

func open(t *testing.T, url, network string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: network})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformancePostgres(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	storetest.Run(t, func(t *testing.T) func() store.Engine {
		url := srv.NewDatabase(t)
		return func() store.Engine { return open(t, url, "regtest") }
	})
}

func TestOpenRefuses(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	open(t, url, "regtest").Close()
	// Another network's tower.
	_, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "bitcoin"})
	if !errors.Is(err, pgstore.ErrOtherNetwork) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open for another network = %v", err)
	}
	// A newer schema.
	s := open(t, url, "regtest")
	if _, err := s.Pool().Exec(context.Background(), `UPDATE teos_schema SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if !errors.Is(err, pgstore.ErrNewerSchema) {
		t.Fatalf("Open of a newer schema = %v", err)
	}
	// Nothing listening.
	srv.Stop()
	_, err = pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open with the server down = %v", err)
	}
	t.Logf("server down: %v", err)
}

func TestEnsureTowerKey(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	first, err := s.EnsureTowerKey([32]byte{1})
	if err != nil || first != [32]byte{1} {
		t.Fatalf("EnsureTowerKey on an empty database = %x, %v", first, err)
	}
	if got, err := s.EnsureTowerKey([32]byte{2}); err != nil || got != [32]byte{1} {
		t.Fatalf("EnsureTowerKey with a key stored = %x, %v; want the stored one", got, err)
	}
}

func TestQueueMissed(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	var user teos.UserID
	user[0] = 2
	if _, err := s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 10, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	mk := func(b byte) *store.Appointment {
		return &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{b}, EncryptedBlob: []byte{1}}, UserID: user}
	}
	free := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) { return u, nil }
	plain, tracked := mk(1), mk(2)
	for _, a := range []*store.Appointment{plain, tracked} {
		if _, err := s.UpsertAppointment(a, free); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutTracker(&store.Tracker{UUID: tracked.UUID()}); err != nil {
		t.Fatal(err)
	}
	block := chainhash.Hash{9}
	n, err := s.QueueMissed(block, map[teos.Locator][]byte{{1}: []byte("d1"), {2}: []byte("d2"), {3}: []byte("d3")})
	if err != nil || n != 1 {
		t.Fatalf("QueueMissed = %d, %v; want only the untracked appointment", n, err)
	}
	q, err := s.QueuedHandOvers()
	if err != nil || len(q) != 1 || q[0].UUID != plain.UUID() || q[0].Block != block || string(q[0].Dispute) != "d1" {
		t.Fatalf("queue = %+v, %v", q, err)
	}
	if n, err := s.QueueMissed(block, map[teos.Locator][]byte{{1}: []byte("other")}); err != nil || n != 0 {
		t.Fatalf("QueueMissed again = %d, %v; want the queued entry kept", n, err)
	}
}

// TestTwoInstancesShareSlots: two engines on one database (two teosd instances) add for the
// same user at once; the owner's row lock makes the slot accounting exact across them.
func TestTwoInstancesShareSlots(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	s1, s2 := open(t, url, "regtest"), open(t, url, "regtest")
	defer s1.Close()
	defer s2.Close()
	var user teos.UserID
	user[0] = 3
	const n = 60
	if _, err := s1.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: n - 7, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	errNoSlots := errors.New("no slots")
	pay := func(u store.UserInfo, _ *store.Appointment, _ bool) (store.UserInfo, error) {
		if u.AvailableSlots == 0 {
			return u, errNoSlots
		}
		u.AvailableSlots--
		return u, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := []*pgstore.Store{s1, s2}[i%2]
		wg.Go(func() {
			a := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{byte(i), 1}, EncryptedBlob: []byte{1}}, UserID: user}
			_, errs[i] = s.UpsertAppointment(a, pay)
		})
	}
	wg.Wait()
	refused := 0
	for _, err := range errs {
		if errors.Is(err, errNoSlots) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s2.UserAppointments(user)
	if err != nil || refused != 7 || len(ids) != n-7 {
		t.Fatalf("%d refused, %d stored (%v); want 7 and %d", refused, len(ids), err, n-7)
	}
	if u, _, err := s2.User(user); err != nil || u.AvailableSlots != 0 {
		t.Fatalf("slots = %d, %v", u.AvailableSlots, err)
	}
}
