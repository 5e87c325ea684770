package agent

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

func TestDU(t *testing.T) {
	outside := t.TempDir()
	big := filepath.Join(outside, "big")
	assert.NilError(t, os.WriteFile(big, make([]byte, 1<<20), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(outside, "hidden"), []byte("not in the volume"), 0o644))

	dir := filepath.Join(t.TempDir(), "storage")
	long := "docker/registry/v2/blobs/sha256/ab/ab" + strings.Repeat("0", 62)
	files := map[string]int{
		long + "/data":                           3000,
		"docker/registry/v2/repositories/a/link": 71,
		"empty":                                  0,
		"a-name-over-100-bytes-" + strings.Repeat("n", 100): 10,
		"h\u00e9llo": 600,
		"docker/registry/v2/repositories/a/_uploads/u1/data":      5000,
		"docker/registry/v2/repositories/a/_uploads/u1/startedat": 20,
	}
	for name, size := range files {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, make([]byte, size), 0o644))
	}
	// Links are counted as links, never followed: a file and a directory
	// outside the volume add nothing.
	assert.NilError(t, os.Symlink(big, filepath.Join(dir, "big-link")))
	assert.NilError(t, os.Symlink(outside, filepath.Join(dir, "dir-link")))
	assert.NilError(t, os.Symlink("/"+strings.Repeat("x/", 60), filepath.Join(dir, "long-link")))

	u, err := DU(dir)
	assert.NilError(t, err)
	assert.DeepEqual(t, u, Usage{
		Files: 5, Bytes: 3000 + 71 + 10 + 600,
		UploadFiles: 2, UploadBytes: 5020,
		Dirs: 11, Links: 3,
		Stream: tarSize(t, dir),
	})

	// The walk follows no link, not even the one it is given.
	link := filepath.Join(t.TempDir(), "link")
	assert.NilError(t, os.Symlink(dir, link))
	_, err = DU(link)
	assert.ErrorContains(t, err, "is not a directory (L")
	_, err = DU(filepath.Join(dir, "empty"))
	assert.ErrorContains(t, err, "is not a directory")
	_, err = DU(filepath.Join(dir, "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestIsUpload(t *testing.T) {
	for name, want := range map[string]bool{
		"docker/registry/v2/repositories/a/_uploads":        true,
		"docker/registry/v2/repositories/a/_uploads/u/data": true,
		"_uploads/x": true,
		"docker/registry/v2/repositories/a/_uploadsx/data": false,
		"docker/registry/v2/blobs/sha256/ab/abc/data":      false,
	} {
		assert.Equal(t, isUpload(name), want, name)
	}
}

// tarSize is the size of the tar the engine's archive API makes of dir
// (Go's archive/tar in PAX format, times in whole seconds, names under
// dir's base name), measured by writing it.
func tarSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n countWriter
	tw := tar.NewWriter(&n)
	top := filepath.Base(dir)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = top
		if rel != "." {
			hdr.Name = top + "/" + filepath.ToSlash(rel)
		}
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Format = tar.FormatPAX
		hdr.ModTime = hdr.ModTime.Truncate(time.Second)
		hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	return int64(n)
}

type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) {
	*c += countWriter(len(b))
	return len(b), nil
}
