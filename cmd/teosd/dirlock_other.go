//go:build !unix

package main

// lockDir is not available here: the store's own file lock is the only guard.
func lockDir(string) (func(), error) { return func() {}, nil }
