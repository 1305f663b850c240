package store

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// wantCountsMatchRecount checks the stored totals against a full recount of the buckets.
func wantCountsMatchRecount(t *testing.T, s *Store, step string) recordCounts {
	t.Helper()
	var stored, recount recordCounts
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if stored, err = getCounts(tx.Bucket(bktMeta)); err != nil {
			return err
		}
		recount, err = recountRecords(tx)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	if stored != recount {
		t.Fatalf("%s: stored counts %+v, recount %+v", step, stored, recount)
	}
	wantCounts(t, s, int(recount.users), int(recount.appointments-recount.trackers), int(recount.trackers))
	return recount
}

// acceptUnlessTriggered accepts every upsert of an untriggered appointment, or refuses all.
func acceptUnlessTriggered(refuse bool) AppointmentPolicy {
	return func(u UserInfo, _ *Appointment, triggered bool) (UserInfo, error) {
		if refuse || triggered {
			return u, errTriggered
		}
		u.AvailableSlots--
		return u, nil
	}
}

func TestCountsFollowEveryWritePath(t *testing.T) {
	const nUsers, nLocators, steps = 8, 24, 400
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	t.Cleanup(func() { _ = s.Close() })

	randAppt := func() *Appointment {
		return testAppointment(testUser(rng.IntN(nUsers)), testLocator(rng.IntN(nLocators)), 1+rng.IntN(600))
	}
	// UUIDs come from the same small space as the upserts, so deletes and trackers often hit.
	randUUID := func() teos.UUID { return teos.NewUUID(testLocator(rng.IntN(nLocators)), testUser(rng.IntN(nUsers))) }
	height := uint32(0)
	var maxSeen recordCounts
	seen := map[string]bool{}
	for step := range steps {
		var op string
		switch rng.IntN(10) {
		case 0:
			op = "register or renew"
			expiry := height + 5 + uint32(rng.IntN(30))
			_, _ = s.UpdateUser(testUser(rng.IntN(nUsers)), func(u UserInfo, exists bool) (UserInfo, error) {
				if rng.IntN(5) == 0 {
					return u, errTriggered // a refused registration writes nothing
				}
				return UserInfo{AvailableSlots: 10_000, SubscriptionStart: height, SubscriptionExpiry: expiry}, nil
			})
		case 1, 2:
			op = "upsert"
			_, err := s.UpsertAppointment(randAppt(), acceptUnlessTriggered(rng.IntN(6) == 0))
			if err != nil && !errors.Is(err, errTriggered) && !errors.Is(err, ErrUserNotFound) {
				t.Fatalf("step %d: UpsertAppointment: %v", step, err)
			}
		case 3:
			op = "batch upsert"
			items := make([]AppointmentUpsert, 1+rng.IntN(6))
			for i := range items {
				items[i] = AppointmentUpsert{Appointment: randAppt(), Policy: acceptUnlessTriggered(rng.IntN(4) == 0)}
			}
			if _, err := s.UpsertAppointments(items); err != nil {
				t.Fatalf("step %d: UpsertAppointments: %v", step, err)
			}
		case 4, 5:
			op = "put tracker"
			tr := sampleTracker()
			tr.UUID = randUUID()
			tr.Height = uint32(step)
			if err := s.PutTracker(tr); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("step %d: PutTracker: %v", step, err)
			}
		case 6:
			op = "delete appointments"
			ids := make([]teos.UUID, 1+rng.IntN(4))
			for i := range ids {
				ids[i] = randUUID()
			}
			if err := s.DeleteAppointments(ids, rng.IntN(2) == 0); err != nil {
				t.Fatalf("step %d: DeleteAppointments: %v", step, err)
			}
		case 7:
			op = "delete outdated users"
			height += uint32(rng.IntN(4))
			if _, err := s.DeleteOutdatedUsers(height, uint32(rng.IntN(3))); err != nil {
				t.Fatalf("step %d: DeleteOutdatedUsers: %v", step, err)
			}
		case 8:
			op = "bulk load"
			users := map[teos.UserID]UserInfo{}
			for range rng.IntN(3) {
				users[testUser(rng.IntN(nUsers))] = UserInfo{AvailableSlots: 10_000, SubscriptionExpiry: height + 5 + uint32(rng.IntN(30))}
			}
			appts := make([]*Appointment, rng.IntN(8))
			for i := range appts {
				appts[i] = randAppt() // may repeat a UUID, replace a stored one or have no owner
			}
			if err := s.BulkLoad(users, appts); err != nil && !errors.Is(err, ErrUserNotFound) {
				t.Fatalf("step %d: BulkLoad: %v", step, err)
			}
		case 9:
			op = "concurrent upserts"
			var wg sync.WaitGroup
			for range 6 {
				a, refuse := randAppt(), rng.IntN(3) == 0
				wg.Go(func() { _, _ = s.UpsertAppointment(a, acceptUnlessTriggered(refuse)) })
			}
			wg.Wait()
		}
		seen[op] = true
		c := wantCountsMatchRecount(t, s, op)
		maxSeen.users = max(maxSeen.users, c.users)
		maxSeen.appointments = max(maxSeen.appointments, c.appointments)
		maxSeen.trackers = max(maxSeen.trackers, c.trackers)
		if step%50 == 49 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, path, &Options{NoSync: true})
			wantCountsMatchRecount(t, s, "reopen")
		}
	}
	if len(seen) != 8 || maxSeen.users == 0 || maxSeen.appointments < 10 || maxSeen.trackers < 3 {
		t.Fatalf("the mix exercised too little: ops %v, max counts %+v", seen, maxSeen)
	}
}

// TestOpenUpgradesVersion1 writes a file as a version 1 binary left it (no counts) and checks
// that Open recounts and bumps the version.
func TestOpenUpgradesVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	registerAll(t, s, 3, 100, 1000)
	var ids []teos.UUID
	for i := range 5 {
		a := testAppointment(testUser(i%3), testLocator(i), 100)
		mustUpsert(t, s, a)
		ids = append(ids, a.UUID())
	}
	for _, id := range ids[:2] {
		tr := sampleTracker()
		tr.UUID = id
		if err := s.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		if err := meta.Delete(keyCounts); err != nil {
			return err
		}
		return putVersion(meta, 1)
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}

	s = mustOpen(t, path, nil)
	defer s.Close()
	wantCounts(t, s, 3, 3, 2)
	wantCountsMatchRecount(t, s, "upgraded")
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktMeta).Get(keyVersion); string(v) != string([]byte{0, 0, 0, dbVersion}) {
			t.Errorf("version = %x, want %d", v, dbVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The upgraded totals keep moving with writes.
	if err := s.DeleteAppointments(ids[:1], false); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, 3, 3, 1)
}

func TestCountsRejectsCorruptTotals(t *testing.T) {
	for name, v := range map[string][]byte{
		"short":                 make([]byte, countsLen-1),
		"negative":              encodeCounts(recordCounts{users: -1}),
		"more trackers than ap": encodeCounts(recordCounts{appointments: 1, trackers: 2}),
	} {
		if _, err := decodeCounts(v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decodeCounts = %v, want ErrCorrupt", name, err)
		}
	}
	want := recordCounts{users: 3, appointments: 1 << 40, trackers: 7}
	if got, err := decodeCounts(encodeCounts(want)); err != nil || got != want {
		t.Errorf("round trip = %+v, %v; want %+v", got, err, want)
	}
}

// Damaged totals must not block writes: the next write recounts them from the records.
func TestWriteHealsDamagedTotals(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	register(t, s, testUser(1), 10, 1000)
	mustUpsert(t, s, testAppointment(testUser(1), testLocator(1), 10))
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMeta).Put(keyCounts, []byte("garbage"))
	}); err != nil {
		t.Fatal(err)
	}
	mustUpsert(t, s, testAppointment(testUser(1), testLocator(2), 10))
	wantCounts(t, s, 1, 2, 0)
}
