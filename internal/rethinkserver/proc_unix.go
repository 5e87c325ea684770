//go:build !windows

package rethinkserver

import (
	"errors"
	"syscall"
)

// processGone says whether no process with this pid lives on this host.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
