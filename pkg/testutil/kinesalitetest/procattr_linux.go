package kinesalitetest

import (
	"os/exec"
	"syscall"
)

// setDieWithParent makes the kernel kill the child when the thread that
// started it exits, so a test binary that ends, crashes or is killed never
// leaves a kinesalite behind.
func setDieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
