package store

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

func randomLocator(t testing.TB) teos.Locator {
	var l teos.Locator
	for i := range l {
		l[i] = byte(rand.Uint32())
	}
	return l
}

func TestLocFilterNoFalseNegativesFewFalsePositives(t *testing.T) {
	const n = 50_000
	f := newLocFilter(n)
	keys := make([]teos.Locator, n)
	for i := range keys {
		keys[i] = randomLocator(t)
		f.add(&keys[i])
	}
	for i := range keys {
		if !f.mayContain(&keys[i]) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	for range n {
		l := randomLocator(t)
		if f.mayContain(&l) {
			fp++
		}
	}
	// 16 bits per key in 512-bit blocks: about 0.1%; 1% would mean the hashing is broken.
	if rate := float64(fp) / n; rate > 0.01 {
		t.Fatalf("false positive rate %.4f at capacity", rate)
	}
	t.Logf("false positives at capacity: %d of %d (%.3f%%), %d bytes for %d keys", fp, n, 100*float64(fp)/n, 8*len(f.words), n)
}

// fillStore upserts n appointments of one user and returns their locators.
func fillStore(t *testing.T, s *Store, from, n int) []teos.Locator {
	t.Helper()
	user := testUser(1)
	if _, err := s.UpdateUser(user, func(UserInfo, bool) (UserInfo, error) {
		return UserInfo{AvailableSlots: 1 << 30, SubscriptionExpiry: 1000}, nil
	}); err != nil {
		t.Fatal(err)
	}
	var appts []*Appointment
	var locs []teos.Locator
	for i := from; i < from+n; i++ {
		appts = append(appts, testAppointment(user, testLocator(i), 10))
		locs = append(locs, testLocator(i))
	}
	if err := s.BulkLoad(nil, appts); err != nil {
		t.Fatal(err)
	}
	return locs
}

// wantAllFound checks that every locator is found, and that unknown ones are not.
func wantAllFound(t *testing.T, s *Store, locs []teos.Locator) {
	t.Helper()
	query := append([]teos.Locator{randomLocator(t), randomLocator(t)}, locs...)
	found, err := s.AppointmentsByLocators(query)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(locs) {
		t.Fatalf("found %d of %d locators", len(found), len(locs))
	}
	for _, l := range locs {
		if len(found[l]) != 1 {
			t.Fatalf("locator %s: %d appointments", l, len(found[l]))
		}
		if got, err := s.AppointmentsByLocator(l); err != nil || len(got) != 1 {
			t.Fatalf("AppointmentsByLocator(%s) = %d, %v", l, len(got), err)
		}
	}
}

func waitFilter(t *testing.T, s *Store) LocatorFilterStats {
	t.Helper()
	if !s.WaitLocatorFilter(t.Context().Done()) {
		t.Fatal("filter never ready")
	}
	return s.LocatorFilterStats()
}

func TestLocatorFilterSavedAtCloseAndLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	if st := waitFilter(t, s); st.Loaded || st.Builds != 1 {
		t.Fatalf("new store: %+v, want built once", st)
	}
	locs := fillStore(t, s, 0, 5000)
	wantAllFound(t, s, locs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + filterFileSuffix); err != nil {
		t.Fatalf("no filter file after Close: %v", err)
	}

	s = mustOpen(t, path, nil)
	st := waitFilter(t, s)
	if !st.Loaded || st.Builds != 0 || st.Added < 5000 {
		t.Fatalf("reopened: %+v, want loaded with >= 5000 keys", st)
	}
	wantAllFound(t, s, locs)
	// Appointments added after the load go into the loaded filter.
	more := fillStore(t, s, 5000, 100)
	wantAllFound(t, s, append(locs, more...))
	// A random locator is almost never passed to the index.
	if kept := s.filters.maybeStored([]teos.Locator{randomLocator(t), randomLocator(t), randomLocator(t)}); len(kept) == 3 {
		t.Fatal("the filter let three random locators through")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A filter file is trusted only for the exact state it was saved with.
func TestLocatorFilterFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
	}{
		{"written by another program after Close", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			// What an older teosd, unaware of the filter, does: write, leaving the epoch in meta.
			if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Put([]byte("x"), []byte("y")) }); err != nil {
				t.Fatal(err)
			}
			_ = db.Close()
		}},
		{"damaged file", func(t *testing.T, path string) {
			b, err := os.ReadFile(path + filterFileSuffix)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(path+filterFileSuffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated file", func(t *testing.T, path string) {
			if err := os.Truncate(path+filterFileSuffix, 100); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing file", func(t *testing.T, path string) {
			if err := os.Remove(path + filterFileSuffix); err != nil {
				t.Fatal(err)
			}
		}},
		{"file of an earlier close", func(t *testing.T, path string) {
			old, err := os.ReadFile(path + filterFileSuffix)
			if err != nil {
				t.Fatal(err)
			}
			s := mustOpen(t, path, &Options{NoSync: true})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+filterFileSuffix, old, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "teos.db")
			s := mustOpen(t, path, &Options{NoSync: true})
			locs := fillStore(t, s, 0, 2000)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, path)
			s = mustOpen(t, path, &Options{NoSync: true})
			defer s.Close()
			if st := waitFilter(t, s); st.Loaded || st.Builds != 1 {
				t.Fatalf("%+v, want rebuilt from the index", st)
			}
			wantAllFound(t, s, locs)
		})
	}
}

// Appointments added while the filter is being built from the index are in the result.
func TestLocatorFilterBuildWithConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	locs := fillStore(t, s, 0, 20_000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + filterFileSuffix); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, &Options{NoSync: true})
	defer s.Close()
	var wg sync.WaitGroup
	added := make([][]teos.Locator, 4)
	for g := range added {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := testUser(1)
			for i := range 300 {
				l := testLocator(1_000_000 + g*1000 + i)
				a := testAppointment(user, l, 10)
				if _, err := s.UpsertAppointment(a, func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }); err != nil {
					t.Error(err)
					return
				}
				added[g] = append(added[g], l)
			}
		}()
	}
	wg.Wait()
	if st := waitFilter(t, s); st.Loaded {
		t.Fatalf("%+v, want built", st)
	}
	for _, l := range added {
		locs = append(locs, l...)
	}
	wantAllFound(t, s, locs)
}

// Deleted appointments leave stale keys: a rebuild drops them and nothing is lost.
func TestLocatorFilterRebuildAfterDeletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true})
	defer s.Close()
	waitFilter(t, s)
	locs := fillStore(t, s, 0, 3000)
	var ids []teos.UUID
	for _, l := range locs[:2000] {
		ids = append(ids, teos.NewUUID(l, testUser(1)))
	}
	if err := s.DeleteAppointments(ids, false); err != nil {
		t.Fatal(err)
	}
	if st := s.LocatorFilterStats(); st.Deleted != 2000 {
		t.Fatalf("deleted %d, want 2000", st.Deleted)
	}
	s.filters.startBuild()
	s.filters.wg.Wait()
	st := s.LocatorFilterStats()
	if st.Builds != 2 || st.Deleted != 0 || st.Added != 1000 {
		t.Fatalf("after rebuild %+v, want 2 builds, 1000 keys, 0 deleted", st)
	}
	wantAllFound(t, s, locs[2000:])
	if found, err := s.AppointmentsByLocators(locs[:2000]); err != nil || len(found) != 0 {
		t.Fatalf("deleted locators found: %d, %v", len(found), err)
	}
}

func BenchmarkLocFilterMayContain(b *testing.B) {
	f := newLocFilter(1 << 20)
	l := randomLocator(b)
	for b.Loop() {
		f.mayContain(&l)
		l[0]++
	}
}

func TestNoLocatorFilterOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true, NoLocatorFilter: true})
	locs := fillStore(t, s, 0, 500)
	wantAllFound(t, s, locs)
	if s.WaitLocatorFilter(nil) || s.LocatorFilterStats().Ready {
		t.Fatal("a filter without the option")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + filterFileSuffix); !os.IsNotExist(err) {
		t.Fatalf("filter file written without a filter: %v", err)
	}
	s = mustOpen(t, path, &Options{NoSync: true})
	defer s.Close()
	waitFilter(t, s)
	wantAllFound(t, s, locs)
}

func TestCloseTwice(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A filter sized for a small store is rebuilt bigger once it holds twice its capacity.
func TestLocatorFilterGrows(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), &Options{NoSync: true})
	defer s.Close()
	waitFilter(t, s)
	var locs []teos.Locator
	for i := 0; i < 3; i++ {
		locs = append(locs, fillStore(t, s, i*50_000, 50_000)...)
	}
	s.filters.wg.Wait()
	st := s.LocatorFilterStats()
	if st.Builds < 2 || st.Capacity < 100_000 {
		t.Fatalf("%+v: want a rebuild to a capacity above 100k", st)
	}
	wantAllFound(t, s, locs[len(locs)-1000:])
}
