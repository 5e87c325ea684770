package imagebackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Since reads a file, or every image backup of a directory, oldest first:
// other files are passed over, encrypted ones and the output skipped.
func TestSince(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "b-full.tar")
	backuptest.WriteImageBackup(t, full, backuptest.Day(1), backuptest.VolumeWith(t, "layer one"))
	incr := filepath.Join(dir, "a-incr.tar")
	backuptest.WriteImageBackup(t, incr, backuptest.Day(2), backuptest.VolumeWith(t, "layer one", "layer two"), full)
	backuptest.WriteMetadataBackup(t, filepath.Join(dir, "meta.tar"), backuptest.Day(0))
	backuptest.EncryptFile(t, full, filepath.Join(dir, "c.tar.gpg"))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, ".partial.tar"), []byte("being written"), 0o600))

	var printed strings.Builder
	prog := progress.NewMode(&printed, progress.Plain)
	bases, err := Since(dir, incr, prog)
	assert.NilError(t, err)
	assert.Equal(t, len(bases), 1, "the output is not an earlier backup")
	assert.Equal(t, bases[0].Path, full)
	assert.Assert(t, is.Contains(printed.String(), "skipping "+filepath.Join(dir, "c.tar.gpg")+": encrypted"))

	bases, err = Since(dir, filepath.Join(dir, "new.tar"), prog)
	assert.NilError(t, err)
	assert.Equal(t, len(bases), 2)
	assert.Equal(t, bases[0].Path, full, "oldest first")
	assert.Assert(t, bases[1].Incremental)

	bases, err = Since(full, "-", prog)
	assert.NilError(t, err)
	assert.Equal(t, len(bases), 1)

	_, err = Since(filepath.Join(dir, "c.tar.gpg"), "-", prog)
	assert.ErrorContains(t, err, "c.tar.gpg: encrypted, and no index beside it (c.tar.gpg.index")

	// With its index beside it, the encrypted backup serves without a
	// secret, as the plain one it holds does.
	f, err := os.Open(full)
	assert.NilError(t, err)
	ix, err := imagearchive.IndexOf(f)
	f.Close()
	assert.NilError(t, err)
	x, err := imagearchive.CreateIndex(filepath.Join(dir, "c.tar.gpg"), ix)
	assert.NilError(t, err)
	assert.NilError(t, x.CommitWith(func() error { return nil }))
	printed.Reset()
	bases, err = Since(filepath.Join(dir, "c.tar.gpg"), "-", prog)
	assert.NilError(t, err)
	assert.Equal(t, len(bases), 1)
	assert.Assert(t, bases[0].FromIndex)
	assert.Equal(t, bases[0].File, "c.tar.gpg")
	assert.Equal(t, bases[0].Blobs(), 1)
	assert.Assert(t, is.Contains(printed.String(), "holds 1 blob, says its index c.tar.gpg.index"))
	bases, err = Since(dir, filepath.Join(dir, "new.tar"), prog)
	assert.NilError(t, err)
	assert.Equal(t, len(bases), 2, "the encrypted copy of the full backup counts once; the index is no backup")
	_, err = Since(filepath.Join(dir, "meta.tar"), "-", prog)
	assert.ErrorContains(t, err, "not an image backup")
	_, err = Since(t.TempDir(), "-", prog)
	assert.ErrorContains(t, err, "the directory holds no readable image backup")
}

// ReadSince reads the bases beside the backup's start: its lines wait for
// Wait, and the chooser takes the bases at the listing's first entry, or,
// told when they are read, once they are.
func TestReadSince(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.tar")
	backuptest.WriteImageBackup(t, full, backuptest.Day(1), backuptest.VolumeWith(t, "layer one"))

	var printed strings.Builder
	prog := progress.NewMode(&printed, progress.Plain)
	p := ReadSince(full, "-", prog)
	<-p.done
	assert.Equal(t, printed.String(), "", "held until the backup uses the bases")
	o := Options{Since: p, Replica: &dtr.Replica{ID: "0123456789ab"}, Volume: &imagevolume.Volume{Name: "dtr-registry-0123456789ab"}, Progress: prog}
	c := &chooser{bases: o.bases, prog: prog, vol: "v"}
	c.Add(agent.ListEntry{Name: "docker/registry/v2/repositories/a/_layers/sha256/x/link", Type: "file", Size: 71})
	assert.Assert(t, is.Contains(printed.String(), "incremental: "+full+" holds 1 blob"))
	omit, err := c.Omit()
	assert.NilError(t, err)
	assert.Equal(t, len(omit), 0)
	assert.Equal(t, c.Entries, 1)
	assert.Equal(t, len(c.since), 1)

	// With read, the listing's entries wait for no base: the bases are
	// taken once read, or at the choice.
	var readNow bool
	c = &chooser{bases: o.bases, read: func() bool { return readNow }, prog: prog, vol: "v"}
	c.Add(agent.ListEntry{Name: "docker/", Type: "dir"})
	assert.Assert(t, !c.decided, "waited for the bases at the first entry")
	readNow = true
	c.Add(agent.ListEntry{Name: "docker/registry/", Type: "dir"})
	assert.Assert(t, c.decided, "the bases were read")
	omit, err = c.Omit()
	assert.NilError(t, err)
	assert.Equal(t, c.Entries, 2)
	assert.Equal(t, len(c.since), 1)

	// Unlisted (a volume's incremental): no listing, and the choice is
	// every blob the bases hold, where the registry keeps it, by size.
	c = &chooser{bases: o.bases, prog: prog, vol: "v", unlisted: true}
	assert.Assert(t, c.Unlisted())
	omit, err = c.Omit()
	assert.NilError(t, err)
	assert.DeepEqual(t, omit, imagearchive.HeldPaths(c.since))
	assert.Equal(t, len(omit), 1)
	for name, size := range omit {
		assert.Assert(t, imagearchive.Held(c.since, name, size), name)
	}
	assert.Assert(t, is.Contains(printed.String(), "reading what v holds beyond the 1 blob the earlier backups hold, which are left out"))

	// A base that cannot be read fails the choice, whenever it comes.
	p = ReadSince(filepath.Join(dir, "missing.tar"), "-", prog)
	c = &chooser{bases: Options{Since: p, Progress: prog}.bases, prog: prog, vol: "v"}
	c.Add(agent.ListEntry{Name: "a", Type: "file"})
	_, err = c.Omit()
	assert.ErrorContains(t, err, "--since: stat "+filepath.Join(dir, "missing.tar"))
	assert.ErrorContains(t, p.failed(), "no such file")
	c = &chooser{bases: Options{Since: p, Progress: prog}.bases, prog: prog, vol: "v"}
	_, err = c.Omit()
	assert.ErrorContains(t, err, "no such file", "an empty listing too")
}
