//go:build unix

package tlsgen

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEnsureWaitsForAnotherProcess: a holder of the data dir's lock (another teosd generating
// the identities) is waited for, and one that never lets go is reported instead of waited on
// for ever; nothing is written meanwhile.
func TestEnsureWaitsForAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	saved := lockWait
	t.Cleanup(func() { lockWait = saved })
	lockWait = 200 * time.Millisecond

	if _, err := Ensure(dir); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("Ensure with the dir locked: %v, want an error naming the other holder", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("%d files written while another process held the lock", len(entries))
	}

	lockWait = 10 * time.Second
	done := make(chan error, 1)
	go func() { _, err := Ensure(dir); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Ensure returned (%v) while the lock was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	f.Close() // the other process is done
	if err := <-done; err != nil {
		t.Fatalf("Ensure after the lock was released: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != len(allFiles) {
		t.Fatalf("%d files, want %d", len(entries), len(allFiles))
	}
}
