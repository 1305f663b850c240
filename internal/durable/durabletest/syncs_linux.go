// Package durabletest tells a test which files and directories the code under test flushed.
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
// fdatasync), in order; every call runs as usual. A seccomp filter on that thread only (it ends
// with fn) stops each call until this process has read which file its descriptor names, so
// fn must do its work on its own goroutine. The test is skipped where such a filter cannot be
// installed.
func Syncs(t testing.TB, fn func()) []string {
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
		{Code: jeqK, Jt: 0, Jf: 4, K: arch},
		{Code: ldW, K: 0}, // seccomp_data.nr
		{Code: jeqK, Jt: 1, Jf: 0, K: unix.SYS_FSYNC},
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
	var (
		mu    sync.Mutex
		paths []string
	)
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
			// The caller shares this process's descriptor table and waits in the call.
			p, err := os.Readlink("/proc/self/fd/" + strconv.FormatUint(req.args[0]&0xffffffff, 10))
			if err != nil {
				p = "?" + err.Error()
			}
			mu.Lock()
			paths = append(paths, p)
			mu.Unlock()
			resp := seccompNotifResp{id: req.id, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); errno != 0 {
				closeFd()
				return
			}
		}
	}()
	<-ran // each call was recorded before it was let through
	mu.Lock()
	defer mu.Unlock()
	return paths
}
