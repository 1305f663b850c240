package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// writerWaitsForRemap reports whether some goroutine is blocked in bbolt's remap waiting for
// the mmap lock, which only open read transactions hold.
func writerWaitsForRemap() bool {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("[sync.RWMutex.Lock")) && bytes.Contains(g, []byte("go.etcd.io/bbolt.(*DB).mmap(")) {
			return true
		}
	}
	return false
}

var errStalled = errors.New("a commit waits in bbolt's remap for the walk")

// growFile adds appointments until the file is more than twice as big as it was, which makes a
// commit remap it: bbolt maps a small file with the next power of two of its size.
func growFile(s *Store, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	for i := 1 << 20; ; i++ {
		a := testAppointment(testUser(0), testLocator(i), 1000)
		if _, err := s.UpsertAppointment(a, func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil }); err != nil {
			return err
		}
		now, err := os.Stat(path)
		if err != nil {
			return err
		}
		if now.Size() > 2*fi.Size() {
			return nil
		}
	}
}

// A get_all_appointments whose reader is slow (a big listing sent to a slow client) must not
// hold a read transaction while it waits: a commit that grows the file remaps it, which waits
// for every open read transaction, and every new read waits behind that commit, so adds,
// blocks and authentications would all stall for as long as the listing takes.
func TestAppointmentWalkDoesNotStallGrowingWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, &Options{NoSync: true, NoLocatorFilter: true})
	defer s.Close()
	register(t, s, testUser(0), 1<<30, 1000)
	for i := range 10 {
		mustUpsert(t, s, testAppointment(testUser(0), testLocator(i), 100))
	}
	grown := make(chan error, 1)
	visited := 0
	err := s.ForEachAppointment(nil, func(*Appointment, *Tracker) error {
		if visited++; visited > 1 {
			return nil
		}
		go func() { grown <- growFile(s, path) }()
		for {
			select {
			case err := <-grown:
				return err
			default:
			}
			if writerWaitsForRemap() {
				return errStalled
			}
			time.Sleep(time.Millisecond)
		}
	})
	if errors.Is(err, errStalled) {
		<-grown // the walk is over: the commit goes on
		t.Fatal("a commit that grew the file waited for the walk's callback")
	}
	if err != nil {
		t.Fatal(err)
	}
	// The appointments stored before the walk were all visited; the ones added during it may be.
	if visited < 10 {
		t.Fatalf("visited %d appointments, want at least the 10 stored before the walk", visited)
	}
}

// Across chunk boundaries the walk visits every record stored throughout it exactly once, in
// UUID order, each with its tracker, while fn itself adds and deletes appointments (which a
// walk inside one read transaction could not allow: the write would wait for the walk).
func TestAppointmentWalkResumesAcrossChunks(t *testing.T) {
	defer func(n int) { walkChunk = n }(walkChunk)
	walkChunk = 3
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	register(t, s, testUser(0), 1<<20, 1000)
	want := map[teos.UUID]bool{} // uuid -> has a tracker
	var ids []teos.UUID
	for i := range 20 {
		a := testAppointment(testUser(0), testLocator(i), 10)
		mustUpsert(t, s, a)
		ids = append(ids, a.UUID())
		want[a.UUID()] = false
		if i%4 == 0 {
			tr := sampleTracker()
			tr.UUID = a.UUID()
			if err := s.PutTracker(tr); err != nil {
				t.Fatal(err)
			}
			want[a.UUID()] = true
		}
	}
	var seen []teos.UUID
	added := 0
	err := s.ForEachAppointment(nil, func(a *Appointment, tr *Tracker) error {
		id := a.UUID()
		seen = append(seen, id)
		if has, ok := want[id]; ok && has != (tr != nil) {
			t.Errorf("appointment %s: tracker %v, want %v", id, tr != nil, has)
		}
		// Delete the visited appointment and add a new one: neither may disturb the walk.
		if err := s.DeleteAppointments([]teos.UUID{id}, false); err != nil {
			return err
		}
		if added < 5 {
			added++
			_, err := s.UpsertAppointment(testAppointment(testUser(0), testLocator(1000+added), 10), func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil })
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[teos.UUID]int{}
	for i, id := range seen {
		count[id]++
		if i > 0 && bytes.Compare(seen[i-1][:], id[:]) >= 0 {
			t.Fatalf("walk out of UUID order at %d", i)
		}
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Errorf("appointment %s visited %d times, want once", id, count[id])
		}
	}
}

// One unreadable record must not hide every other from get_all_appointments (the admin's only
// way to see what the tower watches): the walk lists the readable ones and names the others.
func TestAppointmentWalkSkipsUnreadableRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	register(t, s, testUser(1), 100, 1000)
	register(t, s, testUser(2), 100, 1000)
	badAppt := testAppointment(testUser(1), testLocator(1), 10)
	badTracker := testAppointment(testUser(2), testLocator(1), 10) // same locator
	good := []*Appointment{testAppointment(testUser(1), testLocator(2), 10), testAppointment(testUser(2), testLocator(3), 10)}
	for _, a := range append([]*Appointment{badAppt, badTracker}, good...) {
		mustUpsert(t, s, a)
	}
	tr := sampleTracker()
	tr.UUID = badTracker.UUID()
	if err := s.PutTracker(tr); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	badApptID, badTrackerID := badAppt.UUID(), badTracker.UUID()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bktAppointments).Put(badApptID[:], []byte{appointmentRecordV1, 1, 2}); err != nil {
			return err
		}
		return tx.Bucket(bktTrackers).Put(badTrackerID[:], []byte{0xff, 1, 2})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, path, nil)
	defer s.Close()

	for _, c := range []struct {
		name string
		loc  *teos.Locator
		want []*Appointment
	}{{"all", nil, good}, {"locator", new(testLocator(1)), nil}} {
		var seen []teos.UUID
		err := s.ForEachAppointment(c.loc, func(a *Appointment, _ *Tracker) error {
			seen = append(seen, a.UUID())
			return nil
		})
		u, ok := errors.AsType[*UnreadableRecords](err)
		if !ok || !errors.Is(err, ErrCorrupt) || u.Count != 2 {
			t.Fatalf("%s: ForEachAppointment = %v, want an *UnreadableRecords (ErrCorrupt) counting 2", c.name, err)
		}
		for _, id := range []teos.UUID{badApptID, badTrackerID} {
			if !strings.Contains(err.Error(), id.String()) {
				t.Errorf("%s: error %q does not name %s", c.name, err, id)
			}
		}
		if len(seen) != len(c.want) {
			t.Fatalf("%s: visited %d appointments, want the %d readable ones", c.name, len(seen), len(c.want))
		}
		for _, a := range c.want {
			if !slices.Contains(seen, a.UUID()) {
				t.Errorf("%s: readable appointment %s not visited", c.name, a.UUID())
			}
		}
	}
}
