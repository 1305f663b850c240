//go:build !linux

package btcdtest

import (
	"os/exec"
	"syscall"
)

// DieWithParent does nothing outside Linux: no other OS has a parent-death signal, so a
// killed test run may leave its children behind there.
func DieWithParent(cmd *exec.Cmd, sig syscall.Signal) {}
