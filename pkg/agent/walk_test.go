//go:build unix

package agent

import (
	"archive/tar"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// seen is an entry as a walk hands it over, with the tar header the send
// makes of it.
type seen struct {
	Rel, Link string
	Mode      fs.FileMode
	Size      int64
	Header    tar.Header
}

func walked1(t *testing.T, dir string, fn func(rel string)) ([]seen, error) {
	t.Helper()
	var got []seen
	err := walk(dir, nil, func(rel string, info fs.FileInfo, link string) error {
		got = append(got, seenOf(t, rel, info, link))
		if fn != nil {
			fn(rel)
		}
		return nil
	})
	return got, err
}

func seenOf(t *testing.T, rel string, info fs.FileInfo, link string) seen {
	t.Helper()
	s := seen{Rel: rel, Link: link, Mode: info.Mode(), Size: info.Size()}
	if info.Mode().Type()&fs.ModeSocket == 0 { // the send skips sockets
		hdr, err := header("storage", rel, info, link)
		assert.NilError(t, err)
		s.Header = *hdr
	}
	return s
}

// refWalk is what the agent walked with before: filepath.WalkDir and an
// lstat of each entry's whole path.
func refWalk(t *testing.T, dir string) []seen {
	t.Helper()
	var got []seen
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		assert.NilError(t, err)
		rel, err := filepath.Rel(dir, p)
		assert.NilError(t, err)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		} else if d.IsDir() {
			rel += "/"
		}
		info, err := d.Info()
		assert.NilError(t, err)
		link := ""
		if d.Type()&fs.ModeSymlink != 0 {
			link, err = os.Readlink(p)
			assert.NilError(t, err)
		}
		got = append(got, seenOf(t, rel, info, link))
		return nil
	})
	assert.NilError(t, err)
	return got
}

// The walk through directory descriptors hands over what WalkDir and
// lstat did, header for header, in the same order: names that sort
// around a directory's, links of every kind, a fifo, a socket, setuid
// and sticky bits, names that are not UTF-8, and a deep tree.
func TestWalkSameAsWalkDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	write := func(name string, size int, mode os.FileMode) {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, make([]byte, size), 0o600))
		assert.NilError(t, os.Chmod(p, mode))
	}
	write("a/x", 1, 0o644)
	write("a-b", 2, 0o644)
	write("a.b/y", 3, 0o640)
	write("a0", 4, 0o755|os.ModeSetuid)
	write("B", 5, 0o644|os.ModeSetgid|os.ModeSticky)
	write("caf\xe9/\xff\xfe", 6, 0o644) // Latin-1, not UTF-8
	write("h\u00e9llo", 7, 0o644)
	write("docker/registry/v2/blobs/sha256/ab/ab12/data", 100, 0o644)
	write(strings.Repeat("deep/", 150)+"leaf", 8, 0o644)
	assert.NilError(t, os.Symlink("a", filepath.Join(dir, "to-dir")))
	assert.NilError(t, os.Symlink("a-b", filepath.Join(dir, "to-file")))
	assert.NilError(t, os.Symlink("nowhere", filepath.Join(dir, "dangling")))
	assert.NilError(t, os.Symlink("/"+strings.Repeat("long/", 100), filepath.Join(dir, "a/long")))
	assert.NilError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	assert.NilError(t, err)
	defer l.Close()
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "empty"), 0o700))

	got, err := walked1(t, dir, nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, got, refWalk(t, dir))
	assert.Assert(t, len(got) > 170)
	assert.Equal(t, got[0].Rel, "")
	assert.Equal(t, got[0].Header.Name, "storage/")
}

// An entry that goes while the walk runs is skipped, not an error (a
// registry is read while it runs: a garbage collection deletes blobs, a
// finished push removes its upload). Before, the listing failed.
func TestWalkEntriesGone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	for _, name := range []string{"a/f", "b", "c/d/e", "e/f"} {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte("x"), 0o644))
	}
	assert.NilError(t, os.Symlink("b", filepath.Join(dir, "l")))
	var rels []string
	got, err := walked1(t, dir, func(rel string) {
		switch rel {
		case "a/f":
			// Gone after the top directory was read.
			assert.NilError(t, os.Remove(filepath.Join(dir, "b")))
			assert.NilError(t, os.Remove(filepath.Join(dir, "l")))
		case "c/":
			// Gone between its stat and its reading.
			assert.NilError(t, os.RemoveAll(filepath.Join(dir, "c")))
		}
	})
	assert.NilError(t, err)
	for _, s := range got {
		rels = append(rels, s.Rel)
	}
	assert.DeepEqual(t, rels, []string{"", "a/", "a/f", "c/", "e/", "e/f"})
}

// A root that is not a directory, or is a link to one, is refused.
func TestWalkErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	assert.NilError(t, os.MkdirAll(dir, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o644))
	link := filepath.Join(t.TempDir(), "link")
	assert.NilError(t, os.Symlink(dir, link))

	_, err := walked1(t, link, nil)
	assert.Assert(t, is.ErrorContains(err, "is not a directory (L"))
	_, err = walked1(t, filepath.Join(dir, "file"), nil)
	assert.Assert(t, is.ErrorContains(err, "is not a directory"))
	_, err = walked1(t, filepath.Join(dir, "missing"), nil)
	assert.Assert(t, is.ErrorIs(err, fs.ErrNotExist))

}
