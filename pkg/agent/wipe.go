package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Wipe removes everything inside dir, keeping dir itself (a volume's mount
// point), and returns how many entries of dir it removed. dir must be a
// directory, not a symbolic link to one. Nothing is followed: a symbolic
// link inside is removed as a link, whatever it points to, and
// os.RemoveAll descends only into real directories.
func Wipe(dir string) (removed int, err error) {
	st, err := os.Lstat(dir)
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		return 0, fmt.Errorf("%s is not a directory (%s)", dir, st.Mode().Type())
	}
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", dir, err)
	}
	var errs []error
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
