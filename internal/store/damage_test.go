package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/teos-go/teos/internal/store/damagetest"
	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

// damagedStore writes n appointments, then overwrites the header of the page holding
// appointment victim's record (as a torn write or a bad sector would), and reopens the file.
func damagedStore(t *testing.T, n, victim int) (*Store, []*Appointment) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	register(t, s, testUser(0), 1<<20, 1000)
	var as []*Appointment
	for i := range n {
		a := testAppointment(testUser(0), testLocator(i), 100)
		copy(a.EncryptedBlob, []byte{0xde, 0xad, byte(i >> 8), byte(i)})
		as = append(as, a)
	}
	if err := s.BulkLoad(nil, as); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damagetest.ZeroPageHolding(t, path, as[victim].EncryptedBlob, "appointments")
	s, err := Open(path, &Options{NoLocatorFilter: true})
	if err != nil {
		t.Fatalf("Open of a file with one damaged leaf: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, as
}

// A damaged page inside an otherwise whole file makes bbolt panic when a read reaches it; the
// store answers ErrCorrupt (and ErrDamaged) for those reads instead of ending teosd, and the
// reads that do not reach the page still work.
func TestDamagedPageReadIsAnError(t *testing.T) {
	s, as := damagedStore(t, 2000, 1000)
	victim := as[1000].UUID()
	if _, err := s.Appointment(victim); !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrDamaged) {
		t.Fatalf("Appointment(on the damaged page) = %v, want ErrCorrupt and ErrDamaged", err)
	}
	if _, err := s.AppointmentsByLocators([]teos.Locator{as[1000].Locator}); err == nil {
		t.Fatal("AppointmentsByLocators reached the damaged page without an error")
	}
	if err := s.ForEachAppointment(nil, func(*Appointment, *Tracker) error { return nil }); !errors.Is(err, ErrDamaged) {
		t.Fatalf("ForEachAppointment = %v, want ErrDamaged", err)
	}
	if _, ok := errors.AsType[*UnreadableRecords](s.ForEachAppointment(nil, func(*Appointment, *Tracker) error { return nil })); ok {
		t.Fatal("a walk cut short by damage reported itself as complete (UnreadableRecords)")
	}
	// Far from the damage, reads go on.
	if _, _, err := s.User(testUser(0)); err != nil {
		t.Fatalf("User: %v", err)
	}
}

// A panic in a read transaction that is not bbolt's (a bug) is not taken for damage.
func TestBugPanicInReadIsNotDamage(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	defer func() {
		if r := recover(); r != "a bug" {
			t.Fatalf("recovered %v, want the bug's own panic", r)
		}
	}()
	_ = s.view(func(*buckets) error { panic("a bug") })
	t.Fatal("the panic was swallowed")
}

// Once a write transaction panicked on damage, bbolt's in-memory state (freelist, pages)
// may not match the file: no later write may go through, and Unsynced tells teosd to stop.
func TestDamagedPageWriteRefusesLaterWrites(t *testing.T) {
	s, as := damagedStore(t, 2000, 1000)
	_, err := s.UpsertAppointment(as[1000], func(u UserInfo, _ *Appointment, _ bool) (UserInfo, error) { return u, nil })
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("UpsertAppointment(on the damaged page) = %v, want ErrDamaged", err)
	}
	select {
	case <-s.Unsynced():
	default:
		t.Fatal("Unsynced not closed after a write hit the damage")
	}
	// A write far from the damage is refused too.
	if err := s.SetLastBlock([32]byte{1}, 5); !errors.Is(err, ErrDamaged) {
		t.Fatalf("SetLastBlock after the damage = %v, want ErrDamaged", err)
	}
}

// A damaged root page (every bucket hangs off it) makes Open fail with ErrDamaged, a line
// teosd prints, rather than panic in its first transaction.
func TestDamagedRootPageFailsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	register(t, s, testUser(0), 10, 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damagetest.ZeroRootPage(t, path)
	s, err := Open(path, nil)
	if err == nil {
		s.Close()
		t.Fatal("Open of a file with a damaged root page succeeded")
	}
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("Open = %v, want ErrDamaged", err)
	}
	// The file is released: a repaired or restored file can be opened in the same process.
	if db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second}); err != nil {
		t.Fatalf("file still locked after the failed Open: %v", err)
	} else {
		db.Close()
	}
}

// bbolt's assertions against its caller's mistakes are bugs too, though bbolt raises them.
func TestBboltMisuseIsNotDamage(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	defer func() {
		if r, _ := recover().(string); !strings.Contains(r, "managed tx rollback not allowed") {
			t.Fatalf("recovered %q, want bbolt's misuse assertion", r)
		}
	}()
	_ = viewTx(s.db, func(tx *bolt.Tx) error { return tx.Rollback() })
	t.Fatal("the misuse panic was swallowed")
}

// A nil dereference in a transaction's own code is a bug: it must not pass for a damaged file
// (only faults at a real address, past the mapped file, are damage).
func TestNilDereferenceInReadIsNotDamage(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	defer s.Close()
	defer func() {
		r := recover()
		if _, ok := r.(runtime.Error); !ok {
			t.Fatalf("recovered %v, want the nil dereference's runtime error", r)
		}
	}()
	var a *Appointment
	_ = s.view(func(*buckets) error { return fmt.Errorf("%d", a.ToSelfDelay) })
	t.Fatal("the panic was swallowed")
}

// A write that faults on a file cut short under the running store (here to its two meta
// pages) panics inside bbolt again when its rollback reloads the freelist page, before the
// transaction releases bbolt's writer lock: Close then waited on that lock for good (itself,
// or for a locator filter build that takes it), and teosd's shutdown with it. The store now notes the lock held, fails every later transaction
// at once and leaves the file to the process's exit.
func TestDamagedWriteDoesNotWedgeClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	register(t, s, testUser(0), 10, 100)
	if err := os.Truncate(path, int64(2*s.db.Info().PageSize)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAppointments(nil, false); !errors.Is(err, ErrDamaged) {
		t.Fatalf("write on the cut file = %v, want ErrDamaged", err)
	}
	if _, _, err := s.User(testUser(0)); !errors.Is(err, ErrDamaged) {
		t.Fatalf("read after it = %v, want ErrDamaged", err)
	}
	if err := s.WaitWrites(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("WaitWrites after it = %v, want ErrDamaged", err)
	}
	s.filters.startBuild() // takes the writer lock once: Close waits for the build
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("Close = %v, want ErrDamaged (the file left open)", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing: Close takes milliseconds
		t.Fatal("Close still waiting for bbolt's writer lock")
	}
}
