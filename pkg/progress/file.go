package progress

import (
	"io"
	"os"
	"time"
)

// watchOffset shows, in the running phase, how far f has been read, until
// the returned function is called. Verify reads the archive sequentially
// through f's offset (side reads use ReadAt, which leaves it alone), so the
// offset is an honest measure of the work done: no reader wrapper is needed
// inside pkg/archive or pkg/imagearchive.
func watchOffset(prog *Printer, f *os.File) func() {
	if prog.Mode() == Quiet {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond) // an lseek: cheap
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// Seek with SeekCurrent moves nothing: it reports the offset.
				if off, err := f.Seek(0, io.SeekCurrent); err == nil {
					prog.Set(0, off)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// fileSize is the size of f, 0 when unknown.
func fileSize(f *os.File) int64 {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return st.Size()
	}
	return 0
}

// Metered runs a whole-file read (verify) as a phase measured by f's
// offset. In plain mode it says first what it reads, as a step: a short
// phase prints no line of its own there.
func Metered[R any](prog *Printer, name string, read func(*os.File) (R, error)) func(*os.File) (R, error) {
	return func(f *os.File) (R, error) {
		if prog.Mode() == Plain {
			prog.Step("%s", name)
		}
		return Measured(prog, name, read)(f)
	}
}

// Measured is Metered without the step: for 'backup verify', whose report
// is the result.
func Measured[R any](prog *Printer, name string, read func(*os.File) (R, error)) func(*os.File) (R, error) {
	return func(f *os.File) (R, error) {
		prog.PhaseOf(name, "", 0, fileSize(f))
		stop := watchOffset(prog, f)
		rep, err := read(f)
		stop()
		if err == nil {
			prog.Set(0, fileSize(f)) // read to the end
			prog.Done()
		}
		prog.Close()
		return rep, err
	}
}
