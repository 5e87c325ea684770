//go:build !linux

package cpupin

import "errors"

// Process needs Linux's sched_setaffinity.
func Process(cpu int) (restore func(), err error) {
	return nil, errors.New("pinning threads to a CPU is done on Linux only")
}
