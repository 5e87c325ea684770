//go:build unix && !linux

package anonfile

import "os"

func create(dir, pattern string) (*os.File, error) { return createThenRemove(dir, pattern) }
