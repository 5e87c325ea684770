// Package verify is the verify engine: one entry, Run, reads a backup of
// either kind, all of it (verify) or its manifest (inspect), with an
// incremental image backup's chain of earlier backups and, when asked, a
// cross-check against a metadata backup.
package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crosscheck"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// Options say how much to read.
type Options struct {
	// Full reads the whole backup (verify); otherwise only its manifest
	// (inspect).
	Full bool
	// ChainDir is where an incremental image backup's earlier backups are;
	// Decrypt, when not nil, opens the encrypted ones.
	ChainDir string
	Decrypt  imagearchive.Decrypter
	// Index, for a full read of an image backup, is where its index may
	// be (FILE.index): when there, it must match the manifest.
	Index string
	// Metadata, for an image backup, is a metadata backup whose referenced
	// blobs must all be in it; Open opens it.
	Metadata string
	Open     func(path string) (*backupfile.Input, error)
	Progress *progress.Printer
}

// Result is what Run found: the report of a metadata backup or of an
// image backup, and the cross-check.
type Result struct {
	Name       string
	Metadata   *archive.Report
	Images     *imagearchive.Report
	CrossCheck *crosscheck.Result
	// MetadataFile is Options.Metadata, for messages.
	MetadataFile string
}

// RunInput is Run of an opened backup. An encrypted backup (backupfile's
// Input.Plain) is read as it is decrypted,
// with no plaintext file: a metadata backup by archive.VerifyStream, an
// image backup by imagearchive.VerifyStream.
func RunInput(in *backupfile.Input, name string, o Options) (*Result, error) {
	if in.Plain == nil {
		return Run(in.File, name, o)
	}
	// The first pass tells the kinds apart from the first entry, as
	// IsImageArchive does, and goes on with the bytes it read.
	rc, err := in.Plain()
	if err != nil {
		return nil, err
	}
	var head bytes.Buffer
	if imagearchive.IsImageStream(io.TeeReader(rc, &head)) {
		rc.Close()
		if o.Full {
			o.Progress.Step("verifying %s %s", name, in.Streamed())
		}
		read := imagearchive.InspectStream
		if o.Full {
			read = imagearchive.VerifyStream
		}
		return runImages(func() (*imagearchive.Report, error) { return read(in.Plain) }, name, o)
	}
	first := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(&head, rc), rc}
	var once sync.Once
	open := func() (io.ReadCloser, error) {
		var r io.ReadCloser
		once.Do(func() { r = first })
		if r != nil {
			return r, nil
		}
		return in.Plain()
	}
	defer first.Close()
	if o.Metadata != "" {
		return nil, fmt.Errorf("--metadata is for image backups, and %s is a metadata backup: verify the image backup with --metadata %s", name, name)
	}
	res := &Result{Name: name, MetadataFile: o.Metadata}
	if o.Full {
		o.Progress.Step("verifying %s %s", name, in.Streamed())
		res.Metadata, err = archive.VerifyStream(open)
	} else {
		res.Metadata, err = archive.InspectStream(open)
	}
	return res, err
}

// Run reads f, a backup named name in messages. An error is one that
// stopped the reading; what the backup holds that is wrong is in the
// result, and Result.Err says it in one line.
func Run(f *os.File, name string, o Options) (*Result, error) {
	res := &Result{Name: name, MetadataFile: o.Metadata}
	images, err := imagearchive.IsImageArchive(f)
	if err != nil {
		return nil, err
	}
	if !images {
		if o.Metadata != "" {
			return nil, fmt.Errorf("--metadata is for image backups, and %s is a metadata backup: verify the image backup with --metadata %s", name, name)
		}
		read := archive.Inspect
		if o.Full {
			read = progress.Measured(o.Progress, "verifying "+name, archive.Verify)
		}
		res.Metadata, err = read(f)
		return res, err
	}
	read := imagearchive.Inspect
	if o.Full {
		read = progress.Measured(o.Progress, "verifying "+name, imagearchive.Verify)
	}
	return runImages(func() (*imagearchive.Report, error) { return read(f) }, name, o)
}

// runImages has read verify or inspect an image backup, then checks its
// chain and cross-checks it.
func runImages(read func() (*imagearchive.Report, error), name string, o Options) (*Result, error) {
	res := &Result{Name: name, MetadataFile: o.Metadata}
	if o.Metadata != "" && !o.Full {
		return nil, errors.New("--metadata needs the whole image backup read: use 'backup verify'")
	}
	rep, err := read()
	if err != nil {
		return nil, err
	}
	res.Images = rep
	if o.Full && rep.OK() && rep.Incremental() {
		if err := imagearchive.CheckChain(rep, o.ChainDir, o.Decrypt); err != nil {
			return nil, err
		}
	}
	// After the chain, which a wrong index does not change.
	if o.Full && o.Index != "" {
		if err := imagearchive.CheckIndex(rep, o.Index); err != nil {
			return nil, err
		}
	}
	if o.Metadata != "" && rep.BlobDigests != nil {
		if res.CrossCheck, err = crossCheck(o, rep); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// crossCheck verifies the metadata backup, then looks up its digests.
func crossCheck(o Options, rep *imagearchive.Report) (*crosscheck.Result, error) {
	if o.Metadata == "-" {
		return nil, fmt.Errorf("--metadata -: give the metadata backup's file name")
	}
	mf, err := o.Open(o.Metadata)
	if err != nil {
		return nil, fmt.Errorf("--metadata: %w", err)
	}
	defer mf.Close()
	if images, _ := IsImages(mf); images {
		return nil, fmt.Errorf("--metadata %s is an image backup: give the metadata backup (docker dtr backup create)", o.Metadata)
	}
	// An encrypted one opened as a stream is read twice, as it is
	// decrypted: verified, then its documents read (Input.Pass: the
	// second pass must read what the first verified).
	verify := func() (*archive.Report, error) { return archive.VerifyStream(mf.Pass) }
	if mf.Plain == nil {
		verify = func() (*archive.Report, error) { return archive.Verify(mf.File) }
	}
	mrep, err := verify()
	if err != nil {
		return nil, fmt.Errorf("--metadata %s: %w", o.Metadata, err)
	}
	if !mrep.OK() {
		return nil, fmt.Errorf("--metadata %s is not a valid backup (%s): verify it on its own", o.Metadata, mrep.Problems[0])
	}
	res, err := crosscheck.CheckFrom(mf.Pass, mrep, rep.BlobDigests)
	if err != nil {
		return nil, fmt.Errorf("--metadata %s: %w", o.Metadata, err)
	}
	return res, nil
}

// IsImages says whether in is an image backup, from its first entry: of
// the file, or of a decryption of it, stopped there.
func IsImages(in *backupfile.Input) (bool, error) {
	if in.Plain == nil {
		return imagearchive.IsImageArchive(in.File)
	}
	rc, err := in.Plain()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return imagearchive.IsImageStream(rc), nil
}

// Err is the verdict in one line (exit status 1), nil when the backup is
// valid and, with a cross-check, holds every blob referenced.
func (r *Result) Err() error {
	problems := 0
	switch {
	case r.Metadata != nil && !r.Metadata.OK():
		problems = len(r.Metadata.Problems) + r.Metadata.ProblemsOmitted
	case r.Images != nil && !r.Images.OK():
		problems = len(r.Images.Problems) + r.Images.ProblemsOmitted
	case r.CrossCheck != nil && !r.CrossCheck.OK():
		n := len(r.CrossCheck.Missing) + r.CrossCheck.MissingOmitted
		return fmt.Errorf("%s lacks %s that %s references (listed above)", r.Name, human.Plural(n, "blob"), r.MetadataFile)
	default:
		return nil
	}
	return fmt.Errorf("%s is not a valid backup: %s found (listed above)", r.Name, human.Plural(problems, "problem"))
}
