//go:build unix

package tlsgen

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockDir takes an exclusive lock on the directory dir itself (no file is created in it),
// waiting up to lockWait for another holder. A dir that cannot be opened or locked (a file
// system without locks, as some network mounts) is used unlocked, as before: what follows
// reports its own errors.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return func() {}, nil
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return func() { f.Close() }, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			f.Close()
			return func() {}, nil
		case time.Now().After(deadline):
			f.Close()
			return nil, fmt.Errorf("lock %s: another process has held it for %s", dir, lockWait)
		}
		time.Sleep(lockPoll)
	}
}
