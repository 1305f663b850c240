//go:build linux

package btcdtest

import (
	"os/exec"
	"syscall"
)

// DieWithParent makes the kernel send sig to cmd's process when the test process dies, even
// by SIGKILL or an unhandled SIGINT that skips every t.Cleanup. Call it before cmd.Start.
//
// Linux ties the signal to the OS thread that forked the child, not the whole process; Go
// keeps its threads for the life of the process (unless a goroutine exits while locked to
// one, which these tests never do), so in practice it fires when the test binary exits.
func DieWithParent(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}
