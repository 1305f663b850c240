package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

func testUser(i int) teos.UserID {
	var u teos.UserID
	u[0] = 0x02
	binary.BigEndian.PutUint64(u[1:], uint64(i))
	return u
}

func testLocator(i int) teos.Locator {
	var l teos.Locator
	binary.BigEndian.PutUint64(l[:], uint64(i)*0x9e3779b97f4a7c15) // spread over the key space
	binary.BigEndian.PutUint64(l[8:], uint64(i))
	return l
}

func testAppointment(user teos.UserID, loc teos.Locator, blobLen int) *Appointment {
	return &Appointment{
		Appointment:   teos.Appointment{Locator: loc, EncryptedBlob: bytes.Repeat([]byte{byte(blobLen)}, blobLen), ToSelfDelay: 42},
		UserID:        user,
		UserSignature: "d" + loc.String(),
		StartBlock:    100,
	}
}

func mustOpen(t testing.TB, path string, opts *Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// withStores runs a scenario twice: once where reopen is a no-op and once where it closes the
// file and opens it again, so every check made after reopen also proves persistence.
func withStores(t *testing.T, scenario func(t *testing.T, s *Store, reopen func() *Store)) {
	for _, mode := range []string{"fresh", "reopened"} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "teos.db")
			opts := &Options{}
			cur := mustOpen(t, path, opts)
			t.Cleanup(func() { _ = cur.Close() })
			reopen := func() *Store {
				if mode == "fresh" {
					return cur
				}
				if err := cur.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				cur = mustOpen(t, path, opts)
				return cur
			}
			scenario(t, cur, reopen)
		})
	}
}

// register creates a user with the given slots and expiry.
func register(t testing.TB, s *Store, id teos.UserID, slots, expiry uint32) {
	t.Helper()
	_, err := s.UpdateUser(id, func(UserInfo, bool) (UserInfo, error) {
		return UserInfo{AvailableSlots: slots, SubscriptionStart: 1, SubscriptionExpiry: expiry}, nil
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// registerAll registers users 0..n-1 concurrently, so they share batches.
func registerAll(t testing.TB, s *Store, n int, slots, expiry uint32) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.UpdateUser(testUser(i), func(UserInfo, bool) (UserInfo, error) {
				return UserInfo{AvailableSlots: slots, SubscriptionStart: 1, SubscriptionExpiry: expiry}, nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("register: %v", err)
	}
}

// charge is the gatekeeper's slot rule: pay for the new blob, get the old one's slots back.
func charge(a *Appointment) func(UserInfo, *Appointment, bool) (UserInfo, error) {
	return func(u UserInfo, prev *Appointment, triggered bool) (UserInfo, error) {
		if triggered {
			return u, errTriggered
		}
		var old uint32
		if prev != nil {
			old = teos.Slots(len(prev.EncryptedBlob))
		}
		u.AvailableSlots = u.AvailableSlots + old - teos.Slots(len(a.EncryptedBlob))
		return u, nil
	}
}

var errTriggered = errors.New("already triggered")

func mustUpsert(t testing.TB, s *Store, a *Appointment) UserInfo {
	t.Helper()
	u, err := s.UpsertAppointment(a, charge(a))
	if err != nil {
		t.Fatalf("UpsertAppointment %s: %v", a.UUID(), err)
	}
	return u
}

func mustUser(t testing.TB, s *Store, id teos.UserID) UserInfo {
	t.Helper()
	u, ok, err := s.User(id)
	if err != nil || !ok {
		t.Fatalf("User(%s) = %v, %v", id, ok, err)
	}
	return u
}

// commits reads bbolt's transaction id, which grows by one per committed write transaction.
func commits(t testing.TB, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func wantCounts(t *testing.T, s *Store, users, watcher, trackers int) {
	t.Helper()
	u, w, tr, err := s.Counts()
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	if u != users || w != watcher || tr != trackers {
		t.Fatalf("Counts = %d users, %d appointments, %d trackers; want %d, %d, %d", u, w, tr, users, watcher, trackers)
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{MaxBatchSize: 7})
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if s.writes.maxBatch != 7 || s.db.NoSync {
		t.Errorf("options not applied: batch size %d nosync %v", s.writes.maxBatch, s.db.NoSync)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				t.Errorf("bucket %s missing", name)
			}
		}
		if v := tx.Bucket(bktMeta).Get(keyVersion); !bytes.Equal(v, []byte{0, 0, 0, dbVersion}) {
			t.Errorf("version = %x, want %d", v, dbVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The file lock is held: a second Open gives up after the timeout instead of hanging.
	start := time.Now()
	if s2, err := Open(path, nil); err == nil {
		_ = s2.Close()
		t.Error("second Open of a locked file succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v", d)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, nil) // reopening an up-to-date file works
	if s.writes.maxBatch != defaultMaxBatch {
		t.Errorf("zero options should keep the default batch size, got %d", s.writes.maxBatch)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	if err := mustOpen(t, path, nil).Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put(keyVersion, []byte{0, 0, 0, dbVersion + 1})
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	if s, err := Open(path, nil); !errors.Is(err, ErrNewerVersion) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open(newer file) = %v, want ErrNewerVersion", err)
	}
	// The refused file must have been closed again: opening it raw must not time out.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("file still locked after refused Open: %v", err)
	}
	_ = db.Close()
}

func TestTowerKeys(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		if _, ok, err := s.TowerKey(); ok || err != nil {
			t.Fatalf("TowerKey on a new store = %v, %v; want none", ok, err)
		}
		if keys, err := s.TowerKeys(); len(keys) != 0 || err != nil {
			t.Fatalf("TowerKeys on a new store = %v, %v", keys, err)
		}
		// More than 256 keys, so the sequence's byte order matters.
		var added [][32]byte
		for i := range 260 {
			sk := [32]byte{byte(i), byte(i >> 8), 0xee}
			if err := s.AddTowerKey(sk); err != nil {
				t.Fatal(err)
			}
			added = append(added, sk)
		}
		s = reopen()
		if err := s.AddTowerKey([32]byte{0xff}); err != nil {
			t.Fatal(err)
		}
		added = append(added, [32]byte{0xff})
		sk, ok, err := s.TowerKey()
		if err != nil || !ok || sk != added[len(added)-1] {
			t.Fatalf("TowerKey = %x, %v, %v; want the newest %x", sk, ok, err, added[len(added)-1])
		}
		keys, err := s.TowerKeys()
		if err != nil || !slices.Equal(keys, added) {
			t.Fatalf("TowerKeys = %d keys, %v; want all %d oldest first", len(keys), err, len(added))
		}
	})
}

func TestLastBlock(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		if _, _, ok, err := s.LastBlock(); ok || err != nil {
			t.Fatalf("LastBlock on a new store = %v, %v", ok, err)
		}
		for i, h := range []uint32{100, 101, 99} {
			if err := s.SetLastBlock(chainhash.Hash{byte(i), 0xaa}, h); err != nil {
				t.Fatal(err)
			}
		}
		s = reopen()
		hash, height, ok, err := s.LastBlock()
		if err != nil || !ok || hash != (chainhash.Hash{2, 0xaa}) || height != 99 {
			t.Fatalf("LastBlock = %s, %d, %v, %v; want the last one set", hash, height, ok, err)
		}
	})
}

func TestUpdateUser(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice := testUser(1)
		if _, ok, err := s.User(alice); ok || err != nil {
			t.Fatalf("User before registration = %v, %v", ok, err)
		}
		register := func(prev UserInfo, exists bool) (UserInfo, error) {
			if !exists {
				if prev != (UserInfo{}) {
					t.Errorf("absent user's record is %+v, want zero", prev)
				}
				return UserInfo{AvailableSlots: 10, SubscriptionStart: 50, SubscriptionExpiry: 100}, nil
			}
			prev.AvailableSlots += 10
			prev.SubscriptionExpiry += 100
			return prev, nil
		}
		if u, err := s.UpdateUser(alice, register); err != nil || u.SubscriptionExpiry != 100 {
			t.Fatalf("first registration = %+v, %v", u, err)
		}
		s = reopen()
		renewed, err := s.UpdateUser(alice, register)
		want := UserInfo{AvailableSlots: 20, SubscriptionStart: 50, SubscriptionExpiry: 200}
		if err != nil || renewed != want {
			t.Fatalf("renewal = %+v, %v; want %+v", renewed, err, want)
		}

		errFull := errors.New("slots overflow")
		_, err = s.UpdateUser(alice, func(prev UserInfo, _ bool) (UserInfo, error) {
			return UserInfo{AvailableSlots: 1}, fmt.Errorf("renew: %w", errFull)
		})
		if !errors.Is(err, errFull) {
			t.Fatalf("UpdateUser error = %v, want errFull", err)
		}
		s = reopen()
		if got := mustUser(t, s, alice); got != want {
			t.Fatalf("failed update changed the user: %+v, want %+v", got, want)
		}
		// The expiry index followed the renewal: the old expiry no longer makes alice outdated.
		if gone, err := s.DeleteOutdatedUsers(150, 6); err != nil || len(gone) != 0 {
			t.Fatalf("DeleteOutdatedUsers(150) = %v, %v; want nobody", gone, err)
		}
		if gone, err := s.DeleteOutdatedUsers(206, 6); err != nil || !slices.Equal(gone, []teos.UserID{alice}) {
			t.Fatalf("DeleteOutdatedUsers(206) = %v, %v; want alice", gone, err)
		}
		users, err := s.Users()
		if err != nil || len(users) != 0 {
			t.Fatalf("Users after deletion = %v, %v", users, err)
		}
	})
}

func TestUpsertAppointment(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice := testUser(1)
		a := testAppointment(alice, testLocator(1), 100)
		if _, err := s.UpsertAppointment(a, charge(a)); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("upsert for an unknown user = %v, want ErrUserNotFound", err)
		}
		register(t, s, alice, 10, 1000)

		var sawPrev *Appointment
		u, err := s.UpsertAppointment(a, func(user UserInfo, prev *Appointment, triggered bool) (UserInfo, error) {
			if user.AvailableSlots != 10 || triggered {
				t.Errorf("fn saw user %+v triggered %v", user, triggered)
			}
			sawPrev = prev
			return charge(a)(user, prev, triggered)
		})
		if err != nil || u.AvailableSlots != 9 || sawPrev != nil {
			t.Fatalf("insert = %+v, %v (prev %v); want 9 slots and no previous appointment", u, err, sawPrev)
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 9 {
			t.Fatalf("stored slots = %d, want 9", got)
		}

		// Update with a blob worth 3 slots: charged 3, refunded the old 1.
		b := testAppointment(alice, a.Locator, 2*teos.EncryptedBlobMaxSize+1)
		b.StartBlock = 120
		u, err = s.UpsertAppointment(b, func(user UserInfo, prev *Appointment, triggered bool) (UserInfo, error) {
			sawPrev = prev
			return charge(b)(user, prev, triggered)
		})
		if err != nil || u.AvailableSlots != 7 {
			t.Fatalf("update = %+v, %v; want 7 slots", u, err)
		}
		if sawPrev == nil || !appointmentsEqual(sawPrev, a) {
			t.Fatalf("update's fn saw prev %+v, want the first appointment", sawPrev)
		}
		s = reopen()
		got, err := s.Appointment(a.UUID())
		if err != nil || !appointmentsEqual(got, b) {
			t.Fatalf("Appointment after update = %+v, %v; want the new one", got, err)
		}
		if ids, err := s.UserAppointments(alice); err != nil || !slices.Equal(ids, []teos.UUID{a.UUID()}) {
			t.Fatalf("UserAppointments = %v, %v; want one entry", ids, err)
		}
		if locs, err := s.UserLocators(alice); err != nil || !slices.Equal(locs, []teos.Locator{a.Locator}) {
			t.Fatalf("UserLocators = %v, %v", locs, err)
		}
		if as, err := s.AppointmentsByLocator(a.Locator); err != nil || len(as) != 1 {
			t.Fatalf("AppointmentsByLocator = %d, %v; want one entry", len(as), err)
		}
		if _, err := s.Appointment(testAppointment(alice, testLocator(2), 1).UUID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Appointment(unknown) = %v, want ErrNotFound", err)
		}
		wantCounts(t, s, 1, 1, 0)
	})
}

func TestUpsertAppointmentFailureWritesNothing(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice := testUser(1)
		register(t, s, alice, 10, 1000)
		old := testAppointment(alice, testLocator(1), 100)
		mustUpsert(t, s, old)
		s = reopen()
		before := commits(t, s)

		errNoSlots := errors.New("not enough slots")
		fail := func(user UserInfo, _ *Appointment, _ bool) (UserInfo, error) {
			user.AvailableSlots = 0 // what a buggy caller might return alongside its error
			return user, errNoSlots
		}
		update := testAppointment(alice, old.Locator, 500)
		fresh := testAppointment(alice, testLocator(2), 100)
		for _, a := range []*Appointment{update, fresh} {
			if u, err := s.UpsertAppointment(a, fail); err != errNoSlots || u != (UserInfo{}) {
				t.Fatalf("UpsertAppointment = %+v, %v; want errNoSlots returned unchanged", u, err)
			}
		}
		if after := commits(t, s); after != before {
			t.Fatalf("failed upserts committed %d transactions", after-before)
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 9 {
			t.Fatalf("slots = %d after failed upserts, want 9", got)
		}
		if got, err := s.Appointment(old.UUID()); err != nil || !appointmentsEqual(got, old) {
			t.Fatalf("failed update replaced the appointment: %+v, %v", got, err)
		}
		if _, err := s.Appointment(fresh.UUID()); !errors.Is(err, ErrNotFound) {
			t.Fatalf("failed insert stored the appointment: %v", err)
		}
		if as, _ := s.AppointmentsByLocator(fresh.Locator); len(as) != 0 {
			t.Fatalf("failed insert left %d locator index entries", len(as))
		}
		if ids, _ := s.UserAppointments(alice); len(ids) != 1 {
			t.Fatalf("failed insert left user index entries: %v", ids)
		}
		wantCounts(t, s, 1, 1, 0)
	})
}

// A failing call inside a batch must not take the others down, and the survivors' fn may be
// re-run, which is harmless because it only maps its inputs to outputs.
func TestUpsertAppointmentFailureInsideBatch(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	const n = 16
	registerAll(t, s, n, 5, 1000)
	errOdd := errors.New("odd user refused")
	var calls atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			a := testAppointment(testUser(i), testLocator(i), 10)
			_, errs[i] = s.UpsertAppointment(a, func(u UserInfo, prev *Appointment, trig bool) (UserInfo, error) {
				calls.Add(1)
				if i%2 == 1 {
					return u, errOdd
				}
				return charge(a)(u, prev, trig)
			})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		a := testAppointment(testUser(i), testLocator(i), 10)
		_, getErr := s.Appointment(a.UUID())
		slots := mustUser(t, s, testUser(i)).AvailableSlots
		if i%2 == 1 {
			if !errors.Is(errs[i], errOdd) || !errors.Is(getErr, ErrNotFound) || slots != 5 {
				t.Errorf("user %d: err %v, stored %v, slots %d; want refused, nothing stored, 5 slots", i, errs[i], getErr, slots)
			}
		} else if errs[i] != nil || getErr != nil || slots != 4 {
			t.Errorf("user %d: err %v, load %v, slots %d; want stored and charged once (4 slots)", i, errs[i], getErr, slots)
		}
	}
	if calls.Load() < n {
		t.Errorf("fn ran %d times for %d calls", calls.Load(), n)
	}
}

func TestTrackers(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice := testUser(1)
		register(t, s, alice, 10, 1000)
		a := testAppointment(alice, testLocator(1), 100)
		tr := sampleTracker()
		tr.UUID = a.UUID()
		if err := s.PutTracker(tr); !errors.Is(err, ErrNotFound) {
			t.Fatalf("PutTracker without appointment = %v, want ErrNotFound", err)
		}
		if _, err := s.Tracker(tr.UUID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Tracker(unknown) = %v, want ErrNotFound", err)
		}
		mustUpsert(t, s, a)
		mustUpsert(t, s, testAppointment(alice, testLocator(2), 100))
		if err := s.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		wantCounts(t, s, 1, 1, 1)
		got, err := s.Tracker(tr.UUID)
		if err != nil || !trackersEqual(got, tr) {
			t.Fatalf("Tracker = %+v, %v; want %+v", got, err, tr)
		}

		// Re-put with a new status replaces it.
		tr.Confirmed, tr.Height = false, 900
		if err := s.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
		all, err := s.Trackers()
		if err != nil || len(all) != 1 || !trackersEqual(all[0], tr) {
			t.Fatalf("Trackers = %v, %v; want the updated tracker only", all, err)
		}

		var triggered bool
		_, err = s.UpsertAppointment(a, func(u UserInfo, prev *Appointment, trig bool) (UserInfo, error) {
			triggered = trig
			return charge(a)(u, prev, trig)
		})
		if !triggered || !errors.Is(err, errTriggered) {
			t.Fatalf("upsert of a triggered appointment: fn saw triggered=%v, err %v", triggered, err)
		}
		if ids, err := s.UserAppointments(alice); err != nil || len(ids) != 2 {
			t.Fatalf("UserAppointments = %v, %v; want both, triggered included", ids, err)
		}
	})
}

func TestAppointmentsSharingALocator(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		shared, other := testLocator(1), testLocator(2)
		want := map[teos.UUID]*Appointment{}
		for i := range 3 {
			register(t, s, testUser(i), 10, 1000)
			a := testAppointment(testUser(i), shared, 10+i)
			mustUpsert(t, s, a)
			want[a.UUID()] = a
		}
		mustUpsert(t, s, testAppointment(testUser(0), other, 5))
		tracked := testAppointment(testUser(1), shared, 11).UUID()
		if err := s.PutTracker(&Tracker{UUID: tracked, Height: 5}); err != nil {
			t.Fatal(err)
		}
		s = reopen()

		got, err := s.AppointmentsByLocator(shared)
		if err != nil || len(got) != 3 {
			t.Fatalf("AppointmentsByLocator = %d, %v; want 3", len(got), err)
		}
		for _, a := range got {
			if w := want[a.UUID()]; w == nil || !appointmentsEqual(a, w) {
				t.Errorf("unexpected appointment %+v", a)
			}
		}
		if got, err := s.AppointmentsByLocator(testLocator(3)); err != nil || len(got) != 0 {
			t.Fatalf("AppointmentsByLocator(miss) = %v, %v", got, err)
		}

		seen := map[teos.UUID]bool{}
		err = s.ForEachAppointment(&shared, func(a *Appointment, tr *Tracker) error {
			seen[a.UUID()] = true
			if (tr != nil) != (a.UUID() == tracked) {
				t.Errorf("appointment %s has tracker %v", a.UUID(), tr)
			}
			return nil
		})
		if err != nil || len(seen) != 3 {
			t.Fatalf("ForEachAppointment(shared) visited %d, %v; want 3", len(seen), err)
		}
		var total, withTracker int
		err = s.ForEachAppointment(nil, func(a *Appointment, tr *Tracker) error {
			total++
			if tr != nil {
				withTracker++
			}
			return nil
		})
		if err != nil || total != 4 || withTracker != 1 {
			t.Fatalf("ForEachAppointment(nil) = %d visits, %d trackers, %v; want 4, 1", total, withTracker, err)
		}
		errStop := errors.New("stop")
		if err := s.ForEachAppointment(nil, func(*Appointment, *Tracker) error { return errStop }); err != errStop {
			t.Fatalf("ForEachAppointment fn error = %v, want it unchanged", err)
		}
	})
}

func TestAppointmentsByLocators(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		rng := rand.New(rand.NewPCG(1, 2))
		const users, locators = 5, 60
		for u := range users {
			register(t, s, testUser(u), 1000, 1000)
		}
		// Locators 0..59 are stored, each by a random subset of users; 1000+ are never stored.
		for l := range locators {
			for u := range users {
				if l%7 == 0 || rng.IntN(3) == 0 {
					mustUpsert(t, s, testAppointment(testUser(u), testLocator(l), 1+rng.IntN(50)))
				}
			}
		}
		s = reopen()
		for round := range 20 {
			var query []teos.Locator
			for range rng.IntN(40) {
				if rng.IntN(2) == 0 {
					query = append(query, testLocator(rng.IntN(locators)))
				} else {
					query = append(query, testLocator(1000+rng.IntN(1000)))
				}
			}
			if round == 0 { // bounds: below and above every stored key, and duplicates
				query = []teos.Locator{{}, testLocator(3), testLocator(3), {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
			}
			got, err := s.AppointmentsByLocators(query)
			if err != nil {
				t.Fatal(err)
			}
			want := map[teos.Locator][]*Appointment{}
			for _, loc := range query {
				as, err := s.AppointmentsByLocator(loc)
				if err != nil {
					t.Fatal(err)
				}
				if len(as) > 0 {
					want[loc] = as
				}
			}
			if len(got) != len(want) {
				t.Fatalf("round %d: %d locators matched, want %d", round, len(got), len(want))
			}
			for loc, as := range want {
				if !slices.EqualFunc(got[loc], as, appointmentsEqual) {
					t.Fatalf("round %d: locator %s: got %d appointments, want %d", round, loc, len(got[loc]), len(as))
				}
			}
		}
		if got, err := s.AppointmentsByLocators(nil); err != nil || len(got) != 0 {
			t.Fatalf("AppointmentsByLocators(nil) = %v, %v", got, err)
		}
	})
}

func TestDeleteAppointments(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		alice, bob := testUser(1), testUser(2)
		register(t, s, alice, 100, 1000)
		register(t, s, bob, 100, 1000)
		big := testAppointment(alice, testLocator(1), teos.EncryptedBlobMaxSize+1) // 2 slots
		small := testAppointment(alice, testLocator(2), 10)                        // 1 slot
		empty := testAppointment(alice, testLocator(3), 0)                         // 0 slots
		shared := testAppointment(bob, testLocator(1), 10)
		for _, a := range []*Appointment{big, small, empty, shared} {
			mustUpsert(t, s, a)
		}
		if err := s.PutTracker(&Tracker{UUID: big.UUID(), PenaltyTx: []byte{1}}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutTracker(&Tracker{UUID: small.UUID()}); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		wantCounts(t, s, 2, 2, 2)

		// No refund: bob is untouched, alice gets nothing back; a missing UUID is skipped.
		if err := s.DeleteAppointments([]teos.UUID{small.UUID(), {0x42}}, false); err != nil {
			t.Fatal(err)
		}
		if got := mustUser(t, s, alice).AvailableSlots; got != 97 {
			t.Fatalf("slots after delete without refund = %d, want 97", got)
		}
		// Refund: 2 + 0 slots back, the duplicate UUID is refunded once.
		if err := s.DeleteAppointments([]teos.UUID{big.UUID(), empty.UUID(), big.UUID()}, true); err != nil {
			t.Fatal(err)
		}
		s = reopen()
		if got := mustUser(t, s, alice).AvailableSlots; got != 99 {
			t.Fatalf("slots after refund = %d, want 99", got)
		}
		if got := mustUser(t, s, bob).AvailableSlots; got != 99 {
			t.Fatalf("bob's slots = %d, want 99", got)
		}
		for _, a := range []*Appointment{big, small, empty} {
			if _, err := s.Appointment(a.UUID()); !errors.Is(err, ErrNotFound) {
				t.Errorf("appointment %s survived: %v", a.UUID(), err)
			}
			if _, err := s.Tracker(a.UUID()); !errors.Is(err, ErrNotFound) {
				t.Errorf("tracker %s survived: %v", a.UUID(), err)
			}
		}
		if as, err := s.AppointmentsByLocator(testLocator(1)); err != nil || len(as) != 1 || as[0].UserID != bob {
			t.Fatalf("locator index after delete = %v, %v; want only bob's", as, err)
		}
		if ids, err := s.UserAppointments(alice); err != nil || len(ids) != 0 {
			t.Fatalf("alice's index after delete = %v, %v", ids, err)
		}
		wantCounts(t, s, 2, 1, 0)

		// Refunds saturate instead of wrapping round.
		_, err := s.UpdateUser(bob, func(u UserInfo, _ bool) (UserInfo, error) { u.AvailableSlots = ^uint32(0); return u, nil })
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAppointments([]teos.UUID{shared.UUID()}, true); err != nil {
			t.Fatal(err)
		}
		if got := mustUser(t, s, bob).AvailableSlots; got != ^uint32(0) {
			t.Fatalf("saturated refund gave %d slots", got)
		}
	})
}

func TestDeleteOutdatedUsers(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		const delta = 6
		early, late, forever := testUser(1), testUser(2), testUser(3)
		register(t, s, early, 10, 100)
		register(t, s, late, 10, 101)
		register(t, s, forever, 10, ^uint32(0)-2) // expiry+delta overflows u32
		shared := testLocator(7)
		var earlyIDs []teos.UUID
		for i, loc := range []teos.Locator{shared, testLocator(8)} {
			a := testAppointment(early, loc, 10+i)
			mustUpsert(t, s, a)
			earlyIDs = append(earlyIDs, a.UUID())
		}
		if err := s.PutTracker(&Tracker{UUID: earlyIDs[0], Confirmed: true}); err != nil {
			t.Fatal(err)
		}
		lateAppt := testAppointment(late, shared, 10)
		mustUpsert(t, s, lateAppt)
		s = reopen()

		if gone, err := s.DeleteOutdatedUsers(100+delta-1, delta); err != nil || len(gone) != 0 {
			t.Fatalf("one block early: deleted %v, %v", gone, err)
		}
		gone, err := s.DeleteOutdatedUsers(100+delta, delta)
		if err != nil || !slices.Equal(gone, []teos.UserID{early}) {
			t.Fatalf("at expiry+delta: deleted %v, %v; want only the early user", gone, err)
		}
		s = reopen()
		if _, ok, _ := s.User(early); ok {
			t.Fatal("outdated user still stored")
		}
		for _, id := range earlyIDs {
			if _, err := s.Appointment(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("appointment %s survived its user: %v", id, err)
			}
		}
		if trs, err := s.Trackers(); err != nil || len(trs) != 0 {
			t.Fatalf("trackers survived their user: %v, %v", trs, err)
		}
		if ids, err := s.UserAppointments(early); err != nil || len(ids) != 0 {
			t.Fatalf("user index survived: %v, %v", ids, err)
		}
		if as, err := s.AppointmentsByLocator(shared); err != nil || len(as) != 1 || as[0].UserID != late {
			t.Fatalf("shared locator = %v, %v; want only the late user's", as, err)
		}
		if got, err := s.AppointmentsByLocators([]teos.Locator{testLocator(8)}); err != nil || len(got) != 0 {
			t.Fatalf("locator index survived: %v, %v", got, err)
		}
		wantCounts(t, s, 2, 1, 0)

		if gone, err := s.DeleteOutdatedUsers(^uint32(0), delta); err != nil || !slices.Equal(gone, []teos.UserID{late}) {
			t.Fatalf("at max height: deleted %v, %v; want the late user and not the one whose expiry+delta overflows", gone, err)
		}
		wantCounts(t, s, 1, 0, 0)
	})
}

func TestCounts(t *testing.T) {
	withStores(t, func(t *testing.T, s *Store, reopen func() *Store) {
		wantCounts(t, s, 0, 0, 0)
		for u := range 3 {
			register(t, s, testUser(u), 100, 1000)
			for l := range 4 {
				mustUpsert(t, s, testAppointment(testUser(u), testLocator(l), 10))
			}
		}
		for l := range 2 {
			if err := s.PutTracker(&Tracker{UUID: teos.NewUUID(testLocator(l), testUser(0))}); err != nil {
				t.Fatal(err)
			}
		}
		// Updating an appointment must not count it twice.
		mustUpsert(t, s, testAppointment(testUser(1), testLocator(0), 20))
		s = reopen()
		wantCounts(t, s, 3, 10, 2)
	})
}

func TestCorruptRecordIsAnError(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	register(t, s, testUser(1), 10, 100)
	a := testAppointment(testUser(1), testLocator(1), 10)
	mustUpsert(t, s, a)
	id := a.UUID()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktAppointments).Put(id[:], []byte{appointmentRecordV1, 1, 2})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Appointment(id); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Appointment(corrupt) = %v, want ErrCorrupt", err)
	}
	if _, err := s.AppointmentsByLocators([]teos.Locator{a.Locator}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppointmentsByLocators(corrupt) = %v, want ErrCorrupt", err)
	}
	if err := s.DeleteAppointments([]teos.UUID{id}, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DeleteAppointments(corrupt) = %v, want ErrCorrupt", err)
	}
}

func TestConcurrentUpsertsShareCommits(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	const n = 64
	registerAll(t, s, n, 10, 1000)
	before := commits(t, s)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			a := testAppointment(testUser(i), testLocator(i), 100)
			_, errs[i] = s.UpsertAppointment(a, charge(a))
		})
	}
	close(start)
	wg.Wait()
	used := commits(t, s) - before
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upsert %d: %v", i, err)
		}
	}
	for i := range n {
		if _, err := s.Appointment(teos.NewUUID(testLocator(i), testUser(i))); err != nil {
			t.Fatalf("appointment %d missing: %v", i, err)
		}
		if got := mustUser(t, s, testUser(i)).AvailableSlots; got != 9 {
			t.Fatalf("user %d has %d slots, want 9", i, got)
		}
	}
	wantCounts(t, s, n, n, 0)
	t.Logf("%d concurrent upserts took %d commits", n, used)
	if used >= n {
		t.Fatalf("%d concurrent upserts took %d commits; batching should need fewer", n, used)
	}
}

// One unreadable record under a block's locator must not hide the block's other matches:
// the watcher would fail the block, retry it for ever and so watch no later block.
func TestAppointmentsByLocatorsSkipsUnreadableRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	register(t, s, testUser(1), 100, 1000)
	register(t, s, testUser(2), 100, 1000)
	bad := testAppointment(testUser(1), testLocator(1), 10)
	shared := testAppointment(testUser(2), testLocator(1), 10) // same locator as bad
	other := testAppointment(testUser(1), testLocator(2), 10)
	dangling := testAppointment(testUser(2), testLocator(3), 10)
	for _, a := range []*Appointment{bad, shared, other, dangling} {
		mustUpsert(t, s, a)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Damage the file as a bit flip or a lost page would: one record garbled, one index entry
	// left without its record.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	badID, danglingID := bad.UUID(), dangling.UUID()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktAppointments).Put(badID[:], []byte{appointmentRecordV1, 1, 2}); err != nil {
			return err
		}
		return tx.Bucket(bktAppointments).Delete(danglingID[:])
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, nil)
	t.Cleanup(func() { _ = s.Close() })

	found, err := s.AppointmentsByLocators([]teos.Locator{testLocator(3), testLocator(1), testLocator(2)})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppointmentsByLocators = %v, want ErrCorrupt naming the unreadable records", err)
	}
	for _, id := range []teos.UUID{badID, danglingID} {
		if !strings.Contains(err.Error(), id.String()) {
			t.Errorf("error %q does not name unreadable appointment %s", err, id)
		}
	}
	if got := found[testLocator(1)]; len(got) != 1 || got[0].UUID() != shared.UUID() {
		t.Errorf("locator 1: got %d appointments, want only the readable one of user 2", len(got))
	}
	if got := found[testLocator(2)]; len(got) != 1 || got[0].UUID() != other.UUID() {
		t.Errorf("locator 2: got %d appointments, want 1", len(got))
	}
	if _, ok := found[testLocator(3)]; ok {
		t.Errorf("locator 3 (only a dangling index entry) is in the result")
	}
}
