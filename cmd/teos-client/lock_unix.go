//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive lock on f for as long as it is open, failing at once if
// another process (or another open of the file) holds it.
func lockFile(f *os.File) error { return flock(f, unix.LOCK_NB) }

// lockFileWait is lockFile waiting for the holder to let go instead of failing.
func lockFileWait(f *os.File) error { return flock(f, 0) }

func flock(f *os.File, flags int) error {
	var err error
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|flags)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errLocked
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}
