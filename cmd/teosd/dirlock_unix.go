//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on the directory dir itself (no file is created in it) until
// release or the process's end. Another holder makes it fail at once. A dir that was removed
// (or replaced) while it was being locked fails with fs.ErrNotExist: a lock on a dir that no
// longer has the name keeps no one out.
func lockDir(dir string) (release func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	return lockOpened(f, dir)
}

// lockOpened is lockDir on f, dir as it was opened; it closes f unless it returns a release.
func lockOpened(f *os.File, dir string) (release func(), err error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errDirLocked
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	locked, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if now, err := os.Stat(dir); err != nil || !os.SameFile(locked, now) {
		f.Close()
		return nil, fmt.Errorf("lock %s: removed meanwhile: %w", dir, fs.ErrNotExist)
	}
	return func() { f.Close() }, nil
}
