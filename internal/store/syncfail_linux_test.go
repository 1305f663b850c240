package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/durable/durabletest"
)

// A commit whose data pages were flushed but whose meta page's flush failed (fsync EIO) is
// read back by bbolt as committed, though the disk may not hold it and Linux reports later
// flushes as successful. The caller got an error; the store must not then acknowledge more
// writes built on that state: it refuses every write until it is reopened.
func TestFailedMetaSyncStopsWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s := mustOpen(t, path, nil)
	t.Cleanup(func() { _ = s.Close() })
	alice := testUser(1)
	register(t, s, alice, 10, 1000)

	var allowErr error
	// bbolt flushes a commit twice: its data pages, then its meta page. The second fails.
	durabletest.FailNthFdatasync(t, 2, func() { _, allowErr = s.AllowUser(testUser(2)) })
	if allowErr == nil {
		t.Fatal("AllowUser with a failed fsync succeeded")
	}
	if ok, err := s.UserAllowed(testUser(2)); err != nil || !ok {
		t.Skipf("the failed commit is not visible here (%v, %v): nothing to check", ok, err)
	}

	select {
	case <-s.Unsynced():
	default:
		t.Error("Unsynced not closed after a failed meta fsync")
	}

	// Every kind of write is refused now: the group commit, the block path, the direct ones.
	a := testAppointment(alice, testLocator(1), 100)
	if _, err := s.UpsertAppointment(a, charge(a)); !errors.Is(err, ErrUnsynced) {
		t.Errorf("UpsertAppointment after a failed meta fsync = %v, want ErrUnsynced", err)
	}
	if _, err := s.UpdateUser(alice, func(u UserInfo, _ bool) (UserInfo, error) { return u, nil }); !errors.Is(err, ErrUnsynced) {
		t.Errorf("UpdateUser = %v, want ErrUnsynced", err)
	}
	if err := s.SetLastBlock(chainhash.Hash{1}, 5); !errors.Is(err, ErrUnsynced) {
		t.Errorf("SetLastBlock = %v, want ErrUnsynced", err)
	}
	if _, err := s.AllowUser(testUser(3)); !errors.Is(err, ErrUnsynced) {
		t.Errorf("AllowUser = %v, want ErrUnsynced", err)
	}
	if err := s.ExtUpdate("x", func(b *bolt.Bucket) error { return b.Put([]byte("k"), []byte("v")) }); !errors.Is(err, ErrUnsynced) {
		t.Errorf("ExtUpdate = %v, want ErrUnsynced", err)
	}
	if _, err := s.Appointment(a.UUID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused appointment is stored: %v", err)
	}

	// Reopening reads the file afresh and writes again.
	if err := s.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	s = mustOpen(t, path, nil)
	mustUpsert(t, s, a)
}

// A commit whose data pages' flush fails is rolled back before its meta page is written: the
// caller gets the error, nothing of it is read back, and later writes go on (a full disk that
// gets space again, a flush error that passes).
func TestFailedDataSyncRollsBackCleanly(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "teos.db"), nil)
	t.Cleanup(func() { _ = s.Close() })
	var allowErr error
	durabletest.FailNthFdatasync(t, 1, func() { _, allowErr = s.AllowUser(testUser(2)) })
	if allowErr == nil {
		t.Fatal("AllowUser with a failed fsync succeeded")
	}
	if ok, err := s.UserAllowed(testUser(2)); err != nil || ok {
		t.Fatalf("UserAllowed after the failed commit = %v, %v; want false", ok, err)
	}
	if _, err := s.AllowUser(testUser(2)); err != nil {
		t.Fatalf("AllowUser after a clean rollback: %v", err)
	}
	register(t, s, testUser(1), 10, 1000)
}
