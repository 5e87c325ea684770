//go:build linux || darwin || freebsd || netbsd || openbsd

package dtrfixture

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// The engine lock: one fixture user per engine at a time, across processes.
// The kernel drops it when the process dies, so a killed run never leaves it
// held.
var engineLock struct {
	sync.Mutex
	f *os.File
}

func lockPath() string { return filepath.Join(os.TempDir(), "dtrfixture-engine.lock") }

// lockEngine takes the lock unless this process holds it, waiting for other
// processes; it gives up (with a warning) only when the lock file cannot be
// used at all.
func lockEngine() {
	engineLock.Lock()
	defer engineLock.Unlock()
	if engineLock.f != nil || os.Getenv(EnvLocked) != "" {
		return
	}
	f, err := os.OpenFile(lockPath(), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dtrfixture: not locking the engine: %v\n", err)
		return
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "dtrfixture: waiting for another test process to finish with the Docker engine (%s)\n", lockPath())
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			fmt.Fprintf(os.Stderr, "dtrfixture: not locking the engine: %v\n", err)
			f.Close()
			return
		}
	}
	engineLock.f = f
}

func unlockEngine() {
	engineLock.Lock()
	defer engineLock.Unlock()
	if engineLock.f != nil {
		engineLock.f.Close() // releases the flock
		engineLock.f = nil
	}
}
