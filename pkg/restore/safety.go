package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
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

// saveSafety writes the safety backup at path, all of it or nothing, and
// verifies the copy (check): the steps every target's SaveSafety takes
// before anything is changed. explain adds what the target knows to an
// error of write or of committing the file. Once its own temporary file
// is made, it removes those that killed runs left in the directory, and
// says so with prog.
func saveSafety(prog *progress.Printer, path string, write func(io.Writer) error, explain func(error) error, check func(*os.File) error) error {
	out, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write the safety backup (choose another place with --safety-dir, or --no-safety-backup): %w; nothing was changed", err)
	}
	defer out.Abort()
	swept, errs := atomicfile.SweepStale(filepath.Dir(path))
	for _, p := range swept {
		prog.Step("removed %s, the temporary file of a run that was killed", p)
	}
	for _, err := range errs {
		prog.Warn("cannot remove the temporary file of a run that was killed: %v", err)
	}
	err = write(out)
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return fmt.Errorf("saving the safety backup %s failed, nothing was changed: %w", path, explain(err))
	}
	if err := withFile(path, check); err != nil {
		return fmt.Errorf("the safety backup %s did not verify, nothing was changed: %w", path, err)
	}
	return nil
}

// withFile opens path for fn, and closes it after.
func withFile(path string, fn func(*os.File) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fn(f)
}
