package rethinkserver

import "syscall"

// withParent has the server go with the test process, even when that is
// killed.
func withParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
