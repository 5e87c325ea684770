package backupfile

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// Output is where a new backup goes: a file written to a temporary name
// and renamed when complete, or standard output; an OpenPGP message when
// encrypting.
type Output struct {
	// Name is the file, or "-" for standard output.
	Name string
	w    io.Writer
	file *atomicfile.File
	// enc, when encrypting, is the OpenPGP message w writes into.
	enc io.WriteCloser
	// Swept are the temporary files of killed runs that Create removed
	// from the output's directory; SweepErrors say which it could not.
	Swept       []string
	SweepErrors []error
}

// Create opens the output: name, or stdout for "-"; encrypted to rcpt
// unless it is nil. A path that cannot be written fails here, before any
// work. Abort it in every case (a no-op after Commit).
//
// Once its own temporary file is made, Create removes from the directory
// the temporary files that killed runs left (atomicfile.SweepStale); a
// running job's are left alone.
func Create(name string, stdout io.Writer, rcpt *crypt.Recipients) (*Output, error) {
	o := &Output{Name: name, w: stdout}
	if name != "-" {
		f, err := atomicfile.Create(name)
		if err != nil {
			return nil, err
		}
		o.file, o.w = f, f
		o.Swept, o.SweepErrors = atomicfile.SweepStale(filepath.Dir(name))
	}
	if rcpt != nil {
		enc, err := crypt.Encrypt(o.w, *rcpt)
		if err != nil {
			o.Abort()
			return nil, err
		}
		o.enc, o.w = enc, enc
	}
	return o, nil
}

func (o *Output) Write(p []byte) (int, error) { return o.w.Write(p) }

// Commit ends the encrypted message, if any, and renames the finished file
// into place.
func (o *Output) Commit() error {
	if o.enc != nil {
		if err := o.enc.Close(); err != nil {
			return fmt.Errorf("finishing the encrypted backup: %w", err)
		}
		o.enc = nil
	}
	if o.file == nil {
		return nil
	}
	return o.file.Commit()
}

// Abort removes an unfinished file.
func (o *Output) Abort() {
	if o.file != nil {
		o.file.Abort()
	}
}
