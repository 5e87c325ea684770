//go:build unix

package anonfile

import "os"

// createThenRemove creates a named 0600 file and removes its name at once.
// Only a kill between the two calls can leave it.
func createThenRemove(dir, pattern string) (*os.File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
