//go:build !linux

package durabletest

import "testing"

// Syncs needs Linux's seccomp user notifications: the test is skipped elsewhere.
func Syncs(t testing.TB, fn func()) []string {
	t.Skip("durabletest.Syncs needs Linux")
	return nil
}

// FailNthFdatasync needs Linux's seccomp user notifications: the test is skipped elsewhere.
func FailNthFdatasync(t testing.TB, n int, fn func()) {
	t.Skip("durabletest.FailNthFdatasync needs Linux")
}

// NoHardLinks needs Linux's seccomp user notifications: the test is skipped elsewhere.
func NoHardLinks(t testing.TB, failWrite int, fn func()) {
	t.Skip("durabletest.NoHardLinks needs Linux")
}
