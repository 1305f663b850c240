//go:build !unix

package main

import "os"

// lockFile is a no-op where flock is not available.
func lockFile(*os.File) error { return nil }

// lockFileWait is a no-op where flock is not available.
func lockFileWait(*os.File) error { return nil }
