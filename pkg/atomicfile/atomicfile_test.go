package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestCommitRenamesA0600File(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "backup.tar")
	assert.NilError(t, os.WriteFile(target, []byte("old"), 0o644))
	f, err := Create(target)
	assert.NilError(t, err)
	_, err = f.WriteString("new")
	assert.NilError(t, err)
	b, _ := os.ReadFile(target)
	assert.Equal(t, string(b), "old", "the target is untouched until Commit")
	assert.NilError(t, f.Commit())
	f.Abort() // after Commit: no effect
	b, _ = os.ReadFile(target)
	assert.Equal(t, string(b), "new")
	st, _ := os.Stat(target)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.DeepEqual(t, names(t, dir), []string{"backup.tar"})
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "backup.tar"))
	assert.NilError(t, err)
	_, err = f.WriteString("partial")
	assert.NilError(t, err)
	f.Abort()
	assert.Equal(t, len(names(t, dir)), 0)
}

func TestCreateRefusesDirectoriesAndMissingParents(t *testing.T) {
	dir := t.TempDir()
	_, err := Create(dir)
	assert.ErrorContains(t, err, "is a directory")
	_, err = Create(filepath.Join(dir, "missing", "backup.tar"))
	assert.ErrorContains(t, err, "cannot write")
}
