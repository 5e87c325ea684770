//go:build linux

package metadata

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
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

// pinProcess puts every thread of this process on cpu, with GOMAXPROCS 1
// (what a process started there gets), as taskset -a would; restore puts
// back the mask and GOMAXPROCS of before.
func pinProcess(cpu int) (restore func(), err error) {
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

// Every thread goes to the core and comes back, GOMAXPROCS with it.
func TestPinProcess(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU")
	}
	allowed := func() map[string]bool {
		seen := map[string]bool{}
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
			if err != nil {
				continue // gone meanwhile
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
					seen[strings.TrimSpace(v)] = true
				}
			}
		}
		return seen
	}
	before, procs := allowed(), runtime.GOMAXPROCS(0)
	restore, err := pinProcess(0)
	if err != nil {
		t.Fatal(err)
	}
	pinned, pinnedProcs := allowed(), runtime.GOMAXPROCS(0)
	restore()
	if len(pinned) != 1 || !pinned["0"] || pinnedProcs != 1 {
		t.Errorf("pinned: threads on %v, GOMAXPROCS %d", pinned, pinnedProcs)
	}
	if after := allowed(); fmt.Sprint(after) != fmt.Sprint(before) || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("restored: threads on %v (before %v), GOMAXPROCS %d (before %d)", after, before, runtime.GOMAXPROCS(0), procs)
	}
}
