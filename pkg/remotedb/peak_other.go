//go:build !linux

package remotedb

// peakMemory is unknown off Linux, where no helper runs.
func peakMemory() int64 { return 0 }
