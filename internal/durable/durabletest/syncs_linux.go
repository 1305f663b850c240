// Package durabletest tells a test which files and directories the code under test flushed,
// and can make a chosen flush fail.
package durabletest

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"unsafe"

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

// Syncs runs fn on an OS thread of its own and returns the paths that thread flushed (fsync or
// fdatasync), in order; every call runs as usual. fn must do its work on its own goroutine
// (see intercept). The test is skipped where such a filter cannot be installed.
func Syncs(t testing.TB, fn func()) []string {
	t.Helper()
	var (
		mu    sync.Mutex
		paths []string
	)
	intercept(t, []uint32{unix.SYS_FSYNC, unix.SYS_FDATASYNC}, func(_ int32, args [6]uint64) syscall.Errno {
		// The caller shares this process's descriptor table and waits in the call.
		p, err := os.Readlink("/proc/self/fd/" + strconv.FormatUint(args[0]&0xffffffff, 10))
		if err != nil {
			p = "?" + err.Error()
		}
		mu.Lock()
		paths = append(paths, p)
		mu.Unlock()
		return 0
	}, fn)
	mu.Lock() // each call was recorded before it was let through
	defer mu.Unlock()
	return paths
}

// FailNthFdatasync runs fn on an OS thread of its own on which the n-th fdatasync fails with
// EIO and every other one runs as usual: a disk that loses one flush.
func FailNthFdatasync(t testing.TB, n int, fn func()) {
	t.Helper()
	i := 0
	intercept(t, []uint32{unix.SYS_FDATASYNC}, func(int32, [6]uint64) syscall.Errno {
		if i++; i == n {
			return unix.EIO
		}
		return 0
	}, fn)
}

// NoHardLinks runs fn on an OS thread of its own on which link(2) fails with EPERM, as on a
// file system without hard links (vfat), and the n-th write(2) fails with ENOSPC (n <= 0:
// none): a disk that fills up.
func NoHardLinks(t testing.TB, failWrite int, fn func()) {
	t.Helper()
	writes := 0
	intercept(t, []uint32{unix.SYS_LINKAT, unix.SYS_WRITE}, func(nr int32, _ [6]uint64) syscall.Errno {
		if nr == unix.SYS_LINKAT {
			return unix.EPERM
		}
		if writes++; writes == failWrite {
			return unix.ENOSPC
		}
		return 0
	}, fn)
}

// intercept runs fn on an OS thread of its own and stops each of that thread's calls numbered
// in nrs until answer says how it ends: 0 lets it run, an errno fails it. Only that thread is
// filtered (it ends with fn), so the rest of the test process is untouched; answer runs on one
// goroutine, one call at a time. The test is skipped where the filter cannot be installed.
func intercept(t testing.TB, nrs []uint32, answer func(nr int32, args [6]uint64) syscall.Errno, fn func()) {
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
	// arch check; then one jump per number to the notify return, which sits after the allow.
	k := uint8(len(nrs))
	prog := []unix.SockFilter{
		{Code: ldW, K: 4}, // seccomp_data.arch
		{Code: jeqK, Jt: 0, Jf: k + 1, K: arch},
		{Code: ldW, K: 0}, // seccomp_data.nr
	}
	for i, nr := range nrs {
		prog = append(prog, unix.SockFilter{Code: jeqK, Jt: k - uint8(i), Jf: 0, K: nr})
	}
	prog = append(prog,
		unix.SockFilter{Code: retK, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: retK, K: unix.SECCOMP_RET_USER_NOTIF},
	)
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
	// The supervisor answers the filtered thread's calls until the thread is gone.
	go func() {
		for {
			var req seccompNotif
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); errno != 0 {
				if errno == syscall.EINTR {
					continue
				}
				return // the thread exited
			}
			resp := seccompNotifResp{id: req.id, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			if errno := answer(req.nr, req.args); errno != 0 {
				resp = seccompNotifResp{id: req.id, error: -int32(errno)}
			}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); errno != 0 {
				closeFd()
				return
			}
		}
	}()
	<-ran
}
