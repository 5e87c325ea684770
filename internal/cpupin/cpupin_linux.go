//go:build linux

// Package cpupin puts the benchmarks' own process on one core, as taskset
// -a would, so that a server pinned to the other one does not share it:
// the plugin and the server on different machines, as in the field.
package cpupin

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// cpuMask is a Linux cpu_set_t: 1024 CPUs.
type cpuMask [16]uint64

func getAffinity(tid int) (cpuMask, error) {
	var m cpuMask
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, uintptr(tid), unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m)))
	if errno != 0 {
		return m, errno
	}
	return m, nil
}

func setAffinity(tid int, m cpuMask) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m)))
	if errno != 0 {
		return errno
	}
	return nil
}

// setAllThreads gives every thread of this process the mask. A thread
// started meanwhile inherits its creator's mask, which may be the old one:
// the threads are listed again until a pass finds none left to set.
func setAllThreads(m cpuMask) error {
	done := map[int]bool{}
	for {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := setAffinity(tid, m); err != nil && err != syscall.ESRCH {
				return fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
			}
			done[tid], changed = true, true
		}
		if !changed {
			return nil
		}
	}
}

// Process puts every thread of this process on cpu, with GOMAXPROCS 1
// (what a process started there gets), as taskset -a would; restore puts
// back the mask and GOMAXPROCS of before. Processes it starts then inherit
// the core.
func Process(cpu int) (restore func(), err error) {
	old, err := getAffinity(0)
	if err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var m cpuMask
	m[cpu/64] |= 1 << (cpu % 64)
	procs := runtime.GOMAXPROCS(1)
	if err := setAllThreads(m); err != nil {
		setAllThreads(old)
		runtime.GOMAXPROCS(procs)
		return nil, err
	}
	return func() {
		setAllThreads(old)
		runtime.GOMAXPROCS(procs)
	}, nil
}
