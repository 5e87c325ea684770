package anonfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func create(dir, pattern string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), displayName(dir, pattern)), nil
	}
	// Kernels before 3.11 and some file systems (older NFS, overlay on
	// old kernels) do not know O_TMPFILE.
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return createThenRemove(dir, pattern)
	}
	return nil, &os.PathError{Op: "create anonymous file in", Path: dir, Err: err}
}
