//go:build unix

package main

import (
	"math"
	"syscall"
)

// fdLimit is the open files limit (Go raises the soft limit to the hard one at start-up),
// 0 if unknown or unlimited.
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == math.MaxUint64 || rl.Cur > math.MaxInt32 {
		return 0
	}
	return int(rl.Cur)
}
