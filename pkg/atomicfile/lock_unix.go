//go:build unix

package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

// lock takes the writer's lock on f, waiting for a sweeper that is
// looking at it to let go.
func lock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// tryLock takes the lock of path if no one holds it, and says what file
// it locked. held says someone holds it.
func tryLock(path string) (fi os.FileInfo, unlock func(), held bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, false, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, nil, true, nil
	}
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		f.Close()
		return nil, nil, false, err
	}
	return fi, func() { f.Close() }, false, nil
}

// removeRefused is for Windows, where a live writer's file cannot be
// removed; here the lock said it first.
func removeRefused(error) bool { return false }

// closeBeforeRename is false: the file is renamed, and removed, while its
// lock is held.
const closeBeforeRename = false
