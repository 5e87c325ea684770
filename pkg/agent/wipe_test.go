package agent

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestWipe(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "storage")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{
		dir + "/docker/registry/v2/blobs/sha256/ab",
		dir + "/docker/registry/v2/repositories/team/app/_manifests",
		dir + "/empty",
		outside + "/keep",
	} {
		assert.NilError(t, os.MkdirAll(d, 0o755))
	}
	for _, f := range []string{dir + "/docker/registry/v2/blobs/sha256/ab/data", dir + "/top", outside + "/keep/file", outside + "/file"} {
		assert.NilError(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	// A read-only directory is emptied too (the agent runs as root; a test
	// user needs the write bit on the parent only, which it has).
	assert.NilError(t, os.Chmod(dir+"/docker/registry/v2/repositories/team/app/_manifests", 0o555))
	// Links pointing out of the volume: removed as links, never followed.
	assert.NilError(t, os.Symlink(outside, dir+"/link-to-dir"))
	assert.NilError(t, os.Symlink(outside+"/file", dir+"/docker/link-to-file"))
	assert.NilError(t, os.Symlink("/nonexistent", dir+"/dangling"))

	n, err := Wipe(dir)
	assert.NilError(t, err)
	assert.Equal(t, n, 5, "docker, top, empty, link-to-dir, dangling")
	left, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(left), 0, "left: %v", left)
	st, err := os.Lstat(dir)
	assert.NilError(t, err)
	assert.Assert(t, st.IsDir(), "the directory itself stays")
	for _, f := range []string{outside + "/keep/file", outside + "/file"} {
		_, err := os.Stat(f)
		assert.NilError(t, err, "what the links pointed to stays")
	}

	n, err = Wipe(dir)
	assert.NilError(t, err)
	assert.Equal(t, n, 0, "an empty directory is no error")

	// The directory itself must not be a link: that would wipe its target.
	link := filepath.Join(root, "storage-link")
	assert.NilError(t, os.Symlink(outside, link))
	_, err = Wipe(link)
	assert.Assert(t, is.ErrorContains(err, "is not a directory"))
	_, err = Wipe(outside + "/file")
	assert.Assert(t, is.ErrorContains(err, "is not a directory"))
	_, err = Wipe(filepath.Join(root, "missing"))
	assert.Assert(t, is.ErrorContains(err, "no such file"))
	_, err = os.Stat(outside + "/keep/file")
	assert.NilError(t, err)
}
