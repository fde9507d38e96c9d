package dynalite

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill the child when the parent dies, even
// by SIGKILL. (Pdeathsig follows the thread that started the child; the
// stdin pipe the script watches covers the rest.)
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
