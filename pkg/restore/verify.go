package restore

import (
	"fmt"
	"io"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// InvalidError refuses to restore a backup that did not verify, or whose
// chain of earlier backups is not complete: nothing was changed. Its
// report (Metadata or Images) says what is wrong, for the caller to show.
type InvalidError struct {
	Name     string
	Metadata *archive.Report
	Images   *imagearchive.Report
	// Chain says the backup verified, but not the earlier backups it
	// depends on.
	Chain bool
}

func (e *InvalidError) Error() string {
	n := 0
	if e.Metadata != nil {
		n = len(e.Metadata.Problems) + e.Metadata.ProblemsOmitted
	} else {
		n = len(e.Images.Problems) + e.Images.ProblemsOmitted
	}
	if e.Chain {
		return fmt.Sprintf("refusing to restore %s: its chain of earlier backups is not complete (%s, listed above; --from DIR says where they are); nothing was changed", e.Name, human.Plural(n, "problem"))
	}
	return fmt.Sprintf("refusing to restore %s: it did not verify (%s, listed above); nothing was changed", e.Name, human.Plural(n, "problem"))
}

// VerifyMetadata reads all of in, a metadata backup named name, before
// anything is changed: an *InvalidError when it did not verify. A plain
// file is verified as a file; an encrypted backup (backupfile's
// Input.Plain) as it is decrypted, with no plaintext
// file (archive.VerifyStream), in the first of its passes (Input.Pass),
// which records what the later ones (the load, the key check) must read
// again. The SHA-256 of the backup's content is known after it
// (in.SHA256).
func VerifyMetadata(in *backupfile.Input, name string, prog *progress.Printer) (*archive.Report, error) {
	var rep *archive.Report
	var err error
	if in.Plain == nil {
		rep, err = progress.Metered(prog, "verifying "+name, archive.Verify)(in.File)
	} else {
		prog.Step("verifying %s %s", name, in.Streamed())
		rep, err = archive.VerifyStream(in.Pass)
	}
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		return nil, &InvalidError{Name: name, Metadata: rep}
	}
	if rep.Kind == archive.KindOfficial {
		prog.Warn("%s was written by docker/dtr backup: it has no manifest, so only its structure and documents were checked", name)
	}
	// A plain file's content is recorded now, in a pass of its own.
	if _, err := in.SHA256(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return rep, nil
}

// VerifyImages reads all of an image backup named name, from open (a
// file, or a decryption of one), before anything is changed, and opens
// the earlier backups an incremental one depends on, in chainDir (the
// encrypted ones through decrypt, when not nil): an
// *InvalidError when it did not verify or its chain is not complete. The
// report keeps the verified manifest, which the restore's content pass is
// checked against. size, when known (0 otherwise), is how much it reads,
// for the progress. The chain is nil for a full backup; close it.
func VerifyImages(open imagearchive.Source, size int64, name, chainDir string, decrypt imagearchive.Decrypter, prog *progress.Printer) (*imagearchive.Report, *imagearchive.Chain, error) {
	phase := "verifying " + name
	if prog.Mode() == progress.Plain {
		prog.Step("%s", phase)
	}
	prog.PhaseOf(phase, "", 0, size)
	rep, err := imagearchive.VerifyStream(func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		return imagearchive.Metered(rc, prog.Reader), nil
	})
	if err == nil {
		prog.Done()
	}
	prog.Close()
	if err != nil {
		return nil, nil, err
	}
	if !rep.OK() {
		return nil, nil, &InvalidError{Name: name, Images: rep}
	}
	prog.Step("%s verified: %s (%s), every file against its SHA-256", name, human.Plural(int(rep.Files), "file"), human.Bytes(rep.Bytes))
	if !rep.Incremental() {
		return rep, nil, nil
	}
	prog.Step("%s is incremental: looking for the %s it depends on in %s", name, human.Plural(len(rep.DependsOn), "earlier backup"), chainDir)
	chain, err := imagearchive.OpenChain(rep, chainDir, decrypt)
	if err == nil && !rep.OK() {
		err = &InvalidError{Name: name, Images: rep, Chain: true}
	}
	if err != nil {
		chain.Close()
		return nil, nil, err
	}
	return rep, chain, nil
}
