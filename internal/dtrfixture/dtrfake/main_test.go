package main

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func TestWipe(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "docker/registry/v2/blobs"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "docker/registry/v2/blobs/data"), []byte("x"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o600))
	assert.NilError(t, wipe(dir))
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	assert.Equal(t, len(entries), 0)
	_, err = os.Stat(dir)
	assert.NilError(t, err)

	assert.ErrorContains(t, wipe(filepath.Join(dir, "missing")), "no such file")
}
