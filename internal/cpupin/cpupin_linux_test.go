//go:build linux

package cpupin

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

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
	restore, err := Process(0)
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
