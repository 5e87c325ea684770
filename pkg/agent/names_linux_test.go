package agent

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

// A sent header names the owner and group as archive/tar's own lookup
// does.
func TestHeaderNamesAsArchiveTar(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(p, []byte("x"), 0o644))
	fi, err := os.Lstat(p)
	assert.NilError(t, err)
	want, err := tar.FileInfoHeader(fi, "")
	assert.NilError(t, err)

	d, _, err := openRoot(dir)
	assert.NilError(t, err)
	defer d.close()
	info, err := d.lstat("f")
	assert.NilError(t, err)
	got, err := header("storage", "f", info, "")
	assert.NilError(t, err)
	assert.Equal(t, got.Uname, want.Uname)
	assert.Equal(t, got.Gname, want.Gname)
	assert.Equal(t, got.Uid, want.Uid)
}

// A name that is not found is looked up once, and left empty, as
// archive/tar leaves it.
func TestNameMissesCached(t *testing.T) {
	cache := map[uint32]string{}
	calls := 0
	missing := func(string) (string, error) { calls++; return "", errors.New("unknown") }
	for range 3 {
		assert.Equal(t, cachedName(cache, 4242, missing), "")
	}
	assert.Equal(t, calls, 1)
	found := func(id string) (string, error) { calls++; return "u" + id, nil }
	assert.Equal(t, cachedName(cache, 7, found), "u7")
	assert.Equal(t, cachedName(cache, 7, found), "u7")
	assert.Equal(t, calls, 2)
}
