package store

import (
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// seccompNotif and seccompNotifResp are the kernel's struct seccomp_notif and
// seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	id    uint64
	pid   uint32
	flags uint32
	nr    int32
	arch  uint32
	ip    uint64
	args  [6]uint64
}

type seccompNotifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// failNthFdatasync runs fn on an OS thread of its own on which the n-th fdatasync fails with
// EIO and every other one runs as usual: a disk that loses one flush. Only that thread is
// filtered (and it ends with fn), so the rest of the test process is untouched.
func failNthFdatasync(t *testing.T, n int, fn func()) {
	t.Helper()
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		t.Skipf("no seccomp filter for %s", runtime.GOARCH)
	}
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		retK = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		{Code: ldW, K: 4}, // seccomp_data.arch
		{Code: jeqK, Jt: 0, Jf: 3, K: arch},
		{Code: ldW, K: 0}, // seccomp_data.nr
		{Code: jeqK, Jt: 0, Jf: 1, K: unix.SYS_FDATASYNC},
		{Code: retK, K: unix.SECCOMP_RET_USER_NOTIF},
		{Code: retK, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}

	listener := make(chan int, 1)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		runtime.LockOSThread() // never unlocked: the filtered thread exits with this goroutine
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			listener <- -1
			return
		}
		fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
			unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
		if errno != 0 {
			listener <- -1
			return
		}
		listener <- int(fd)
		fn()
	}()
	fd := <-listener
	if fd < 0 {
		<-ran
		t.Skip("cannot install a seccomp user-notification filter here")
	}
	// Closing the listener fails the calls it would answer (ENOSYS), so the thread cannot hang
	// on a kernel that refuses an answer (SECCOMP_USER_NOTIF_FLAG_CONTINUE needs Linux 5.5).
	var closeOnce sync.Once
	closeFd := func() { closeOnce.Do(func() { unix.Close(fd) }) }
	defer closeFd()
	// The supervisor answers the filtered thread's fdatasync calls until the thread is gone.
	go func() {
		for i := 1; ; i++ {
			var req seccompNotif
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); errno != 0 {
				if errno == syscall.EINTR {
					i--
					continue
				}
				return // the thread exited
			}
			resp := seccompNotifResp{id: req.id, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			if i == n {
				resp = seccompNotifResp{id: req.id, error: -int32(unix.EIO)}
			}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); errno != 0 {
				closeFd()
				return
			}
		}
	}()
	<-ran
}

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
	failNthFdatasync(t, 2, func() { _, allowErr = s.AllowUser(testUser(2)) })
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
	failNthFdatasync(t, 1, func() { _, allowErr = s.AllowUser(testUser(2)) })
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
