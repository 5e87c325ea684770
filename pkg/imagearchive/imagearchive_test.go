package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// volumeFile is a file of a fake registry volume.
type volumeFile struct {
	name string
	data []byte
	link string
}

func blob(data string) volumeFile {
	sum := sha256.Sum256([]byte(data))
	d := hex.EncodeToString(sum[:])
	return volumeFile{name: "docker/registry/v2/blobs/sha256/" + d[:2] + "/" + d + "/data", data: []byte(data)}
}

// volumeTar is what the engine's archive API gives for a volume mounted at
// /storage: a top directory "storage/", then every directory and file, in
// walk order.
func volumeTar(t testing.TB, files ...volumeFile) []byte {
	t.Helper()
	dirs := map[string]bool{}
	var names []string
	byName := map[string]volumeFile{}
	for _, f := range files {
		byName[f.name] = f
		names = append(names, f.name)
		for d := filepath.Dir(f.name); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				names = append(names, d+"/")
			}
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return walkLess(strings.TrimSuffix(names[i], "/"), strings.TrimSuffix(names[j], "/"))
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}))
	for _, n := range names {
		if strings.HasSuffix(n, "/") {
			assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/" + n, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}))
			continue
		}
		f := byName[n]
		if f.link != "" {
			assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/" + n, Typeflag: tar.TypeSymlink, Linkname: f.link, Mode: 0o777, ModTime: mt}))
			continue
		}
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/" + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), Uid: 1000, Gid: 1000, ModTime: mt}))
		tw.Write(f.data)
	}
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

var info = Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Volume: "dtr-registry-0123456789ab", VolumeDriver: "local", Started: time.Now()}

func write(t *testing.T, vol []byte) (*os.File, *Manifest) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "images.tar"))
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	m, err := Write(f, bytes.NewReader(vol), info, nil)
	assert.NilError(t, err)
	return f, m
}

func sampleVolume(t testing.TB, extra ...volumeFile) []byte {
	files := []volumeFile{
		blob("layer one"), blob("layer two"), blob(`{"config":1}`),
		{name: "docker/registry/v2/repositories/team/app/_manifests/tags/1.0/current/link", data: []byte("sha256:00")},
		{name: "docker/registry/v2/repositories/team/app/_uploads/0b1c/data", data: []byte("half a push")},
		{name: "docker/registry/v2/repositories/team/app/_layers/sha256/aa/link", data: []byte("sha256:aa")},
	}
	return volumeTar(t, append(files, extra...)...)
}

func TestWriteVerifyRestore(t *testing.T) {
	f, m := write(t, sampleVolume(t))
	assert.Equal(t, m.ContentDir, "dtr-registry-0123456789ab/")
	assert.Equal(t, m.Blobs, int64(3))
	assert.Equal(t, m.Files, int64(5))
	assert.Equal(t, m.UploadFiles, int64(1), "unfinished pushes are left out and counted")
	assert.Equal(t, m.UploadBytes, int64(len("half a push")))
	assert.Equal(t, len(m.CorruptBlobs), 0)

	// A plain tar: the content under one top directory, the manifest last.
	_, err := f.Seek(0, io.SeekStart)
	assert.NilError(t, err)
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		names = append(names, hdr.Name)
		if hdr.Typeflag == tar.TypeReg && hdr.Name != ManifestName {
			assert.Equal(t, hdr.Uid, 1000, "owners are kept for a restore by hand")
		}
	}
	assert.Equal(t, names[0], "dtr-registry-0123456789ab/")
	assert.Equal(t, names[len(names)-1], ManifestName)
	for _, n := range names[:len(names)-1] {
		assert.Assert(t, strings.HasPrefix(n, "dtr-registry-0123456789ab/"), n)
		assert.Assert(t, !strings.Contains(n, "_uploads"), n)
	}

	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.Assert(t, rep.Verified)
	assert.Equal(t, len(rep.BlobDigests), 3)
	is, _ := IsImageArchive(f)
	assert.Assert(t, is)

	// Content strips the top directory, for the archive API to extract into
	// the volume; reading it back as the volume checks clean.
	var content bytes.Buffer
	assert.NilError(t, Content(f, m.ContentDir, &content))
	restored := rewrap(t, content.Bytes())
	c, err := CheckVolume(f, bytes.NewReader(restored))
	assert.NilError(t, err)
	assert.Assert(t, c.OK(), "%+v", c)
	assert.Equal(t, c.Checked, int64(5))
	assert.Equal(t, c.Extra, int64(0))

	// A volume missing a file, with one changed and one extra.
	other := sampleVolume(t, volumeFile{name: "docker/registry/v2/repositories/zzz/x", data: []byte("x")})
	other = bytes.Replace(other, []byte("sha256:aa"), []byte("sha256:bb"), 1)
	c, err = CheckVolume(f, bytes.NewReader(other))
	assert.NilError(t, err)
	assert.DeepEqual(t, c.Differ, []string{"docker/registry/v2/repositories/team/app/_layers/sha256/aa/link"})
	assert.Equal(t, c.Extra, int64(1))
	assert.Assert(t, !c.OK())
}

// rewrap puts a content tar under "storage/", as the archive API returns it.
func rewrap(t testing.TB, content []byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755})
	tr := tar.NewReader(bytes.NewReader(content))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		hdr.Name = "storage/" + hdr.Name
		tw.WriteHeader(hdr)
		io.Copy(tw, tr)
	}
	tw.Close()
	return buf.Bytes()
}

func TestCorruptBlobInTheRegistry(t *testing.T) {
	bad := blob("layer three")
	bad.data = []byte("layer thrEE") // same length, other bytes
	f, m := write(t, sampleVolume(t, bad))
	assert.DeepEqual(t, m.CorruptBlobs, []string{bad.name})
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "known at backup time, kept as it was: %v", rep.Problems)
	assert.DeepEqual(t, rep.CorruptBlobs, []string{bad.name})
}

func TestVerifyFindsDamage(t *testing.T) {
	f, _ := write(t, sampleVolume(t))
	data, err := os.ReadFile(f.Name())
	assert.NilError(t, err)
	for name, tc := range map[string]struct {
		edit func([]byte) []byte
		want string
	}{
		"flipped byte in a blob": {func(b []byte) []byte { return bytes.Replace(b, []byte("layer one"), []byte("layer 0ne"), 1) }, "blob data does not match its digest"},
		"flipped byte in a file": {func(b []byte) []byte { return bytes.Replace(b, []byte("sha256:aa"), []byte("sha256:ab"), 1) }, "SHA-256 does not match the manifest"},
		"cut short":              {func(b []byte) []byte { return b[:len(b)/2] }, "not an image backup made by docker-dtr, or cut short"},
	} {
		p := filepath.Join(t.TempDir(), "x.tar")
		assert.NilError(t, os.WriteFile(p, tc.edit(bytes.Clone(data)), 0o600))
		g, err := os.Open(p)
		assert.NilError(t, err)
		rep, err := Verify(g)
		g.Close()
		assert.NilError(t, err)
		assert.Assert(t, !rep.OK(), name)
		assert.Assert(t, is.Contains(rep.Problems[0].String(), tc.want), "%s: %v", name, rep.Problems)
	}
}

func TestEscapesAreRefused(t *testing.T) {
	// The backup refuses a volume whose links lead out of it.
	vol := volumeTar(t, volumeFile{name: "docker/evil", link: "../../../etc/passwd"})
	_, err := Write(io.Discard, bytes.NewReader(vol), info, nil)
	assert.ErrorContains(t, err, "points outside the volume")
	vol = volumeTar(t, volumeFile{name: "docker/abs", link: "/etc/passwd"})
	_, err = Write(io.Discard, bytes.NewReader(vol), info, nil)
	assert.ErrorContains(t, err, "points outside the volume")

	// A crafted archive: verify reports, and Content refuses before writing.
	for _, bad := range []string{"dtr-registry-0123456789ab/../../etc/cron.d/x", "/etc/passwd", "dtr-registry-0123456789ab/a/../../b"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "dtr-registry-0123456789ab/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: bad, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		p := filepath.Join(t.TempDir(), "evil.tar")
		assert.NilError(t, os.WriteFile(p, buf.Bytes(), 0o600))
		g, err := os.Open(p)
		assert.NilError(t, err)
		err = Content(g, "dtr-registry-0123456789ab/", io.Discard)
		g.Close()
		assert.ErrorContains(t, err, "refusing to restore it", bad)
	}
	assert.NilError(t, SafeLink("a/b/link", "../c"))
	assert.ErrorContains(t, SafeLink("a/link", "../../c"), "outside")
}

func TestWalkLess(t *testing.T) {
	assert.Assert(t, walkLess("a/b", "a-b"), "a directory's files come before a sibling sorting after '/'")
	assert.Assert(t, walkLess("a", "a/b"))
	assert.Assert(t, !walkLess("b", "a/z"))
}
