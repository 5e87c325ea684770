package restore

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func openInput(t *testing.T, path string) *backupfile.Input {
	t.Helper()
	in, err := backupfile.Open(path, backupfile.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.Close)
	return in
}

// A backup is read in full before anything is changed; one that did not
// verify, or whose chain is not complete, is refused with its report.
func TestVerifyBeforeRestore(t *testing.T) {
	prog := progress.NewMode(&strings.Builder{}, progress.Quiet)
	set := backuptest.WriteSet(t, t.TempDir())
	dir, meta, full, incr := set.Dir, set.Metadata, set.Full, set.Incremental

	if rep, err := VerifyMetadata(openInput(t, meta), "meta.tar", prog); err != nil || !rep.Verified {
		t.Fatal(rep, err)
	}
	rep, chain, err := VerifyImages(imagearchive.FileSource(open(t, full)), 0, "img-1.tar", dir, nil, prog)
	if err != nil || chain != nil || !rep.OK() {
		t.Fatal(rep, chain, err)
	}
	rep, chain, err = VerifyImages(imagearchive.FileSource(open(t, incr)), 0, "img-2.tar", dir, nil, prog)
	if err != nil || chain == nil || len(chain.Bases) != 1 {
		t.Fatal(rep, chain, err)
	}
	chain.Close()

	var inv *InvalidError
	_, chain, err = VerifyImages(imagearchive.FileSource(open(t, incr)), 0, "img-2.tar", t.TempDir(), nil, prog)
	if !errors.As(err, &inv) || !inv.Chain || inv.Images == nil || chain != nil ||
		err.Error() != "refusing to restore img-2.tar: its chain of earlier backups is not complete (1 problem, listed above; --from DIR says where they are); nothing was changed" {
		t.Fatalf("%v", err)
	}
	backuptest.Corrupt(t, meta)
	_, err = VerifyMetadata(openInput(t, meta), "meta.tar", prog)
	if !errors.As(err, &inv) || inv.Metadata == nil || err.Error() != "refusing to restore meta.tar: it did not verify (1 problem, listed above); nothing was changed" {
		t.Fatalf("%v", err)
	}
}
