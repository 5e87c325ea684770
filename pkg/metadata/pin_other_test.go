//go:build !linux

package metadata

import "errors"

// pinProcess needs Linux's sched_setaffinity.
func pinProcess(cpu int) (restore func(), err error) {
	return nil, errors.New("pinning threads to a CPU is done on Linux only")
}
