package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SafetyPath is a new file name for the safety backup of kind ("metadata"
// or "images") of replica: in dir, or beside input (the current directory
// for standard input, "-"). It never names an existing file, even one of
// the same second.
func SafetyPath(dir, input, kind, replica string) string {
	if dir == "" {
		dir = "."
		if input != "-" {
			dir = filepath.Dir(input)
		}
	}
	if replica == "" {
		replica = "direct"
	}
	base := fmt.Sprintf("safety-%s-%s-%s", kind, replica, time.Now().UTC().Format("20060102T150405Z"))
	p := filepath.Join(dir, base+".tar")
	for n := 2; ; n++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s-%d.tar", base, n))
	}
}
