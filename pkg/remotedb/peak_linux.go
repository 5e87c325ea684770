package remotedb

import "syscall"

// peakMemory is the agent's peak resident memory so far, in bytes (the
// kernel's high-water mark), or 0 where unknown.
func peakMemory() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
