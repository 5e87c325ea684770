// Package anonfile makes temporary files that no kill can leave behind:
// the file has no name from the start (O_TMPFILE on Linux), or it loses its
// name as soon as it is made (removed while open on other Unix systems;
// deleted when its last handle closes on Windows, which the system does
// when the process dies). Only the open file reaches the data, and the
// system frees it when the file is closed or the process ends.
package anonfile

import (
	"os"
	"path/filepath"
)

// Create makes an anonymous read-write 0600 file in dir, or in
// os.TempDir() when dir is empty. pattern is as os.CreateTemp's; it only
// names the file in messages (and, where the file briefly has a name, is
// that name).
func Create(dir, pattern string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	return create(dir, pattern)
}

// displayName is what (*os.File).Name says of an unnamed file.
func displayName(dir, pattern string) string {
	return filepath.Join(dir, pattern) + " (unnamed)"
}
