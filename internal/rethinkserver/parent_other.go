//go:build !linux && !windows

package rethinkserver

import "syscall"

// withParent: only Linux has a parent-death signal; elsewhere the test's
// cleanup stops the server.
func withParent() *syscall.SysProcAttr { return nil }
