// Package durable creates files and directories so that they survive a crash or a power loss:
// a file's data is flushed before it gets its name, and the directory that holds a new name is
// flushed after it. Without the second flush, a file that was itself synced (a bbolt store, a
// key) can be missing after a power loss, its directory entry never having reached the disk.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// SyncDir flushes dir's entries: a name just created, renamed or linked in it survives a crash.
func SyncDir(dir string) error { return Sync(dir) }

// Sync flushes the file or directory at path.
func Sync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	// Windows cannot flush a directory (and does not need to for NTFS metadata).
	if err := f.Sync(); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// MkdirAll creates dir and its missing parents with perm, flushing the parent of each one it
// creates. created lists the directories this call created, deepest first, so that a caller
// whose work then fails can remove them again.
func MkdirAll(dir string, perm fs.FileMode) (created []string, err error) {
	var missing []string // deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("mkdir %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("mkdir %s: %w", dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		err := os.Mkdir(d, perm)
		switch {
		case err == nil:
			created = append([]string{d}, created...)
		case errors.Is(err, fs.ErrExist): // another process made it: its name is flushed below too
		default:
			return created, err
		}
		if err := SyncDir(filepath.Dir(d)); err != nil {
			return created, err
		}
	}
	return created, nil
}

// WriteFile replaces path with data, whole or not at all: the data goes to a temporary file
// in path's directory, which is flushed, renamed over path, and its directory flushed.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp) // a no-op after the rename
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// CreateFile writes path only if it does not exist yet, whole and flushed or not at all:
// the data goes to a temporary file that is flushed and then hard-linked to path, so neither a
// crash nor a concurrent creator ever sees a partial file. created is false, with no error,
// when path already existed (another process may have just created it: read it back).
func CreateFile(path string, data []byte, perm fs.FileMode) (created bool, err error) {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		// A file system without hard links (vfat, some network mounts): create in place. O_EXCL
		// keeps another creator's file; a failed write removes its own, but a crash may leave a
		// partial one, which the reader must then refuse.
		return createInPlace(path, data, perm)
	}
	return true, SyncDir(filepath.Dir(path))
}

func createInPlace(path string, data []byte, perm fs.FileMode) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	if err := writeSynced(f, data); err != nil {
		// Ours (O_EXCL): a partial file left would be taken for another creator's at the next try.
		os.Remove(path)
		return false, fmt.Errorf("create %s: %w", path, err)
	}
	return true, SyncDir(filepath.Dir(path))
}

// writeTemp writes data to a new flushed file beside path and returns its name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	if err := f.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := writeSynced(f, data); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// writeSynced writes data to f, flushes it to disk and closes f.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
