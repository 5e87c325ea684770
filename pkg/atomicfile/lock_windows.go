package atomicfile

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lock does nothing on Windows: a file that a live process holds open
// cannot be removed there, which keeps a sweeper off it.
func lock(*os.File) error { return nil }

// tryLock says what file path is. Windows has no lock to try: Stale takes
// every temporary file for a killed run's, and removing one fails while
// its writer lives (removeRefused).
func tryLock(path string) (os.FileInfo, func(), bool, error) {
	fi, err := os.Lstat(path)
	return fi, func() {}, false, err
}

// removeRefused says the file is open in a live process.
func removeRefused(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_ACCESS_DENIED)
}

// closeBeforeRename is true: Windows renames or removes no file that is
// open without FILE_SHARE_DELETE, as os.CreateTemp opens it.
const closeBeforeRename = true
