package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"gotest.tools/v3/assert"
)

func run(t *testing.T, path string, o Options) (*Result, error) {
	t.Helper()
	o.Open = func(p string) (*backupfile.Input, error) { return backupfile.Open(p, backupfile.OpenOptions{}) }
	return runWith(t, path, o)
}

// runWith is run with o's own Open.
func runWith(t *testing.T, path string, o Options) (*Result, error) {
	t.Helper()
	f, err := os.Open(path)
	assert.NilError(t, err)
	defer f.Close()
	o.Progress = progress.NewMode(&strings.Builder{}, progress.Quiet)
	return Run(f, filepath.Base(path), o)
}

func TestRun(t *testing.T) {
	set := backuptest.WriteSet(t, t.TempDir())
	dir, meta, full, incr := set.Dir, set.Metadata, set.Full, set.Incremental

	res, err := run(t, meta, Options{Full: true})
	assert.NilError(t, err)
	assert.Assert(t, res.Metadata != nil && res.Metadata.Verified)
	assert.NilError(t, res.Err())

	// An incremental backup is valid with its chain, and not without it.
	res, err = run(t, incr, Options{Full: true, ChainDir: dir})
	assert.NilError(t, err)
	assert.NilError(t, res.Err())
	res, err = run(t, incr, Options{Full: true, ChainDir: t.TempDir()})
	assert.NilError(t, err)
	assert.ErrorContains(t, res.Err(), "img-2.tar is not a valid backup: 1 problem found")

	// A cross-check is for image backups, read in full, against a
	// metadata backup.
	_, err = run(t, meta, Options{Full: true, Metadata: meta})
	assert.ErrorContains(t, err, "--metadata is for image backups")
	_, err = run(t, full, Options{Metadata: meta})
	assert.ErrorContains(t, err, "--metadata needs the whole image backup read")
	_, err = run(t, full, Options{Full: true, Metadata: incr})
	assert.ErrorContains(t, err, "is an image backup: give the metadata backup")
	_, err = run(t, full, Options{Full: true, Metadata: "-"})
	assert.ErrorContains(t, err, "give the metadata backup's file name")
	res, err = run(t, full, Options{Full: true, Metadata: meta})
	assert.NilError(t, err)
	assert.Assert(t, res.CrossCheck != nil && res.CrossCheck.OK())
	assert.NilError(t, res.Err())
	_, err = run(t, full, Options{Full: true, Metadata: filepath.Join(dir, "nothing.tar")})
	assert.ErrorContains(t, err, "--metadata: ")

	backuptest.Corrupt(t, meta)
	res, err = run(t, meta, Options{Full: true})
	assert.NilError(t, err)
	assert.ErrorContains(t, res.Err(), "meta.tar is not a valid backup: 1 problem found")
	res, err = run(t, meta, Options{})
	assert.NilError(t, err)
	assert.NilError(t, res.Err(), "inspect reads only the manifest")
}

// Verify checks an image backup's index (FILE.index) against its manifest
// when there is one, after the chain.
func TestRunChecksTheIndex(t *testing.T) {
	set := backuptest.WriteSet(t, t.TempDir())
	indexOf := func(p string) *imagearchive.Index {
		f, err := os.Open(p)
		assert.NilError(t, err)
		defer f.Close()
		ix, err := imagearchive.IndexOf(f)
		assert.NilError(t, err)
		return ix
	}
	o := Options{Full: true, ChainDir: set.Dir, Index: imagearchive.IndexPath(set.Incremental)}
	res, err := run(t, set.Incremental, o)
	assert.NilError(t, err)
	assert.NilError(t, res.Err(), "no index: nothing to check")

	assert.NilError(t, os.WriteFile(o.Index, indexOf(set.Incremental).Marshal(), 0o600))
	res, err = run(t, set.Incremental, o)
	assert.NilError(t, err)
	assert.NilError(t, res.Err())

	assert.NilError(t, os.WriteFile(o.Index, indexOf(set.Full).Marshal(), 0o600))
	res, err = run(t, set.Incremental, o)
	assert.NilError(t, err)
	assert.ErrorContains(t, res.Err(), "img-2.tar is not a valid backup: 1 problem found")
	assert.Assert(t, strings.Contains(res.Images.Problems[0].String(), "the index of another backup"), "%v", res.Images.Problems)
	assert.Equal(t, len(res.Images.Chain), 1, "the chain was checked too")
}

// --metadata's backup, encrypted, compressed or both, is verified and
// cross-checked as it is decrypted and decompressed: with $TMPDIR missing,
// where no plaintext file can be made, the cross-check finds what it finds
// in the plain copy.
func TestCrossCheckEncryptedMetadataAsAStream(t *testing.T) {
	set := backuptest.WriteSet(t, t.TempDir())
	seal := func(path, ext string, rcpt *crypt.Recipients, compress bool) string {
		data, err := os.ReadFile(path)
		assert.NilError(t, err)
		out, err := backupfile.Create(path+ext, nil, rcpt, compress)
		assert.NilError(t, err)
		_, err = out.Write(data)
		assert.NilError(t, err)
		assert.NilError(t, out.Commit())
		return path + ext
	}
	want, err := run(t, set.Full, Options{Full: true, Metadata: set.Metadata})
	assert.NilError(t, err)
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	stream := func(o Options) Options {
		o.Open = func(p string) (*backupfile.Input, error) {
			return backupfile.Open(p, backupfile.OpenOptions{Passphrase: func(string) ([]byte, error) { return []byte("correct horse"), nil }})
		}
		return o
	}
	pass := &crypt.Recipients{Passphrase: []byte("correct horse")}
	for _, v := range []struct {
		ext      string
		rcpt     *crypt.Recipients
		compress bool
	}{{".gpg", pass, false}, {".zst", nil, true}, {".zst.gpg", pass, true}} {
		sealedMeta, sealedImages := seal(set.Metadata, v.ext, v.rcpt, v.compress), seal(set.Incremental, v.ext, v.rcpt, v.compress)
		got, err := runWith(t, set.Full, stream(Options{Full: true, Metadata: sealedMeta}))
		assert.NilError(t, err, v.ext)
		assert.Assert(t, got.CrossCheck != nil && got.CrossCheck.OK(), v.ext)
		assert.DeepEqual(t, got.CrossCheck, want.CrossCheck)
		_, err = runWith(t, set.Full, stream(Options{Full: true, Metadata: sealedImages}))
		assert.ErrorContains(t, err, "is an image backup: give the metadata backup", v.ext)
	}
}
