package imagearchive

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gotest.tools/v3/assert"
)

// WalkCompare orders paths as filepath.WalkDir visits them, which the
// agent's listing and tar follow; plain string order does not.
func TestWalkCompare(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a/c", "a-b", "a/b/x", "a.b/y", "ab", "a/b-c", "b", "a/b/x-y/z"} {
		assert.NilError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		assert.NilError(t, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
	}
	var walked []string
	assert.NilError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			rel += "/"
		}
		walked = append(walked, filepath.ToSlash(rel))
		return err
	}))
	sorted := slices.Clone(walked)
	slices.Reverse(sorted)
	slices.SortFunc(sorted, WalkCompare)
	assert.DeepEqual(t, sorted, walked)
	assert.Assert(t, WalkCompare("a-b", "a/c") > 0, "the walk gives a's content first")
	assert.Equal(t, WalkCompare("a/", "a"), 0)
}
