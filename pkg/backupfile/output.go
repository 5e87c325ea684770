package backupfile

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/iocount"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Output is where a new backup goes: a file written to a temporary name
// and renamed when complete, or standard output; a zstd stream when
// compressing, and an OpenPGP message when encrypting, of that stream when
// both: compressed first, since ciphertext does not compress.
type Output struct {
	// Name is the file, or "-" for standard output.
	Name string
	w    io.Writer
	file *atomicfile.File
	// enc, when encrypting, is the OpenPGP message w writes into.
	enc io.WriteCloser
	// zst, when compressing, is the zstd stream w writes into (and that
	// writes into enc, when encrypting).
	zst *zstdstream.Writer
	// written counts the bytes that reach the file or standard output.
	written *iocount.Writer
	// Swept are the temporary files of killed runs that Create removed
	// from the output's directory; SweepErrors say which it could not.
	Swept       []string
	SweepErrors []error
}

// Create opens the output: name, or stdout for "-"; compressed with zstd
// when compress is set, and encrypted to rcpt unless it is nil. A path that cannot be written fails here, before any
// work. Abort it in every case (a no-op after Commit).
//
// Once its own temporary file is made, Create removes from the directory
// the temporary files that killed runs left (atomicfile.SweepStale); a
// running job's are left alone.
func Create(name string, stdout io.Writer, rcpt *crypt.Recipients, compress bool) (*Output, error) {
	o := &Output{Name: name, w: stdout}
	if name != "-" {
		f, err := atomicfile.Create(name)
		if err != nil {
			return nil, err
		}
		o.file, o.w = f, f
		o.Swept, o.SweepErrors = atomicfile.SweepStale(filepath.Dir(name))
	}
	o.written = &iocount.Writer{W: o.w}
	o.w = o.written
	if rcpt != nil {
		enc, err := crypt.Encrypt(o.w, *rcpt)
		if err != nil {
			o.Abort()
			return nil, err
		}
		o.enc, o.w = enc, enc
	}
	if compress {
		zst, err := zstdstream.NewWriter(o.w)
		if err != nil {
			o.Abort()
			return nil, err
		}
		o.zst, o.w = zst, zst
	}
	return o, nil
}

func (o *Output) Write(p []byte) (int, error) { return o.w.Write(p) }

// Size is how many bytes the file (or standard output) holds so far: all
// of it once Commit has returned.
func (o *Output) Size() int64 { return o.written.N }

// Commit ends the zstd stream and the encrypted message, if any, and
// renames the finished file into place.
func (o *Output) Commit() error {
	if o.zst != nil {
		if err := o.zst.Close(); err != nil {
			return fmt.Errorf("finishing the compressed backup: %w", err)
		}
		o.zst = nil
	}
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

// Abort removes an unfinished file. An unfinished stream on standard
// output is left without the end of its zstd stream and of its message,
// so that no reader takes it for whole.
func (o *Output) Abort() {
	if o.zst != nil {
		o.zst.Abort()
		o.zst = nil
	}
	if o.file != nil {
		o.file.Abort()
	}
}
