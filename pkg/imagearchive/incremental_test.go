package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/google/go-cmp/cmp"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// writeFile writes an image backup of vol to dir/name against the bases.
func writeFile(t *testing.T, dir, name string, vol []byte, since ...*Base) (string, *Manifest) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	assert.NilError(t, err)
	defer f.Close()
	in := info
	in.Since = since
	m, err := Write(f, bytes.NewReader(vol), in, nil)
	assert.NilError(t, err)
	return p, m
}

func openBase(t *testing.T, p string) *Base {
	t.Helper()
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	b, err := OpenBase(f, p)
	assert.NilError(t, err)
	// --since's reading finds the manifest from the end, and the same base.
	st, err := f.Stat()
	assert.NilError(t, err)
	_, _, fromEnd := manifestFromEnd(f, st.Size())
	assert.Assert(t, fromEnd, "%s: the manifest not found from the end", p)
	again, err := OpenBaseFromEnd(f, p)
	assert.NilError(t, err)
	assert.DeepEqual(t, again, b, cmp.AllowUnexported(Base{}))
	return b
}

// verifyChain verifies p and its chain in dir, and returns the report and
// the bases (closed on cleanup).
func verifyChain(t *testing.T, p, dir string) (*os.File, *Report, []*Base, []*os.File) {
	t.Helper()
	f, err := os.Open(p)
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	bases, files, err := VerifyChain(rep, dir)
	assert.NilError(t, err)
	t.Cleanup(func() {
		for _, f := range files {
			f.Close()
		}
	})
	return f, rep, bases, files
}

var (
	tagLink2 = volumeFile{name: "docker/registry/v2/repositories/team/app/_manifests/tags/2.0/current/link", data: []byte("sha256:01")}
	tagLink3 = volumeFile{name: "docker/registry/v2/repositories/team/app/_manifests/tags/3.0/current/link", data: []byte("sha256:02")}
)

func volume2(t testing.TB) []byte {
	return sampleVolume(t, blob("layer three, new"), tagLink2)
}

func volume3(t testing.TB) []byte {
	return sampleVolume(t, blob("layer three, new"), tagLink2, blob("layer four, newer"), tagLink3)
}

// contentFiles is what a content stream writes: name -> kind, mode and
// the data's SHA-256.
func contentFiles(t *testing.T, stream []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(stream))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		assert.NilError(t, err)
		_, dup := out[hdr.Name]
		assert.Assert(t, !dup, "%s twice", hdr.Name)
		h := sha256.New()
		_, err = io.Copy(h, tr)
		assert.NilError(t, err)
		out[hdr.Name] = string(hdr.Typeflag) + " " + hdr.FileInfo().Mode().String() + " " + hex.EncodeToString(h.Sum(nil))
	}
}

func TestIncrementalWriteVerifyRestore(t *testing.T) {
	dir := t.TempDir()
	full, fm := writeFile(t, dir, "full.tar", sampleVolume(t))
	assert.Equal(t, fm.FormatVersion, FormatVersion)
	base := openBase(t, full)
	assert.Equal(t, base.Blobs(), 3)
	assert.Equal(t, base.File, "full.tar")

	inc, m := writeFile(t, dir, "inc.tar", volume2(t), base)
	assert.Equal(t, m.FormatVersion, IncrementalVersion)
	assert.Equal(t, len(m.DependsOn), 1)
	assert.Equal(t, m.DependsOn[0].ManifestSHA256, base.ManifestSHA256)
	assert.Equal(t, m.DependsOn[0].File, "full.tar")
	assert.Equal(t, m.DependsOn[0].Volume, info.Volume)
	assert.Equal(t, m.Blobs, int64(1), "only the new blob is held")
	assert.Equal(t, m.OmittedBlobs, int64(3))
	assert.Equal(t, m.OmittedBytes, int64(len("layer one")+len("layer two")+len(`{"config":1}`)))
	assert.Equal(t, m.Files, int64(5-3+2), "links are always written")

	// The manifest hash is the manifest entry's bytes' SHA-256.
	f, err := os.Open(full)
	assert.NilError(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		assert.NilError(t, err)
		if hdr.Name == ManifestName {
			data, err := io.ReadAll(tr)
			assert.NilError(t, err)
			sum := sha256.Sum256(data)
			assert.Equal(t, hex.EncodeToString(sum[:]), base.ManifestSHA256)
			break
		}
	}

	g, rep, bases, files := verifyChain(t, inc, dir)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.Assert(t, rep.Verified)
	assert.Equal(t, len(bases), 1)
	assert.Equal(t, len(rep.Chain), 1)
	assert.Equal(t, rep.Chain[0].Path, full)
	assert.Equal(t, rep.Chain[0].Blobs, int64(3))
	assert.Equal(t, len(rep.BlobDigests), 4, "omitted blobs count for --metadata")

	// Inspect reads the dependency from the header.
	irep, err := Inspect(g)
	assert.NilError(t, err)
	assert.Assert(t, irep.Incremental())
	assert.Equal(t, irep.DependsOn[0].ManifestSHA256, base.ManifestSHA256)

	// The restore stream is what a full backup of the same volume writes.
	var chain bytes.Buffer
	assert.NilError(t, ChainContent(g, rep, bases, files, &chain))
	fullOf, _ := writeFile(t, t.TempDir(), "full2.tar", volume2(t))
	ff, err := os.Open(fullOf)
	assert.NilError(t, err)
	defer ff.Close()
	frep, err := Verify(ff)
	assert.NilError(t, err)
	var plain bytes.Buffer
	assert.NilError(t, Content(ff, frep.ContentDir, &plain))
	assert.DeepEqual(t, contentFiles(t, chain.Bytes()), contentFiles(t, plain.Bytes()))

	// And the volume check passes for every file, the omitted ones too.
	c, err := CheckVolume(g, bytes.NewReader(volume2(t)))
	assert.NilError(t, err)
	assert.Assert(t, c.OK(), "%+v", c)
	assert.Equal(t, c.Checked, int64(7))
}

func TestIncrementalMissingBase(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	inc, _ := writeFile(t, dir, "inc.tar", volume2(t), openBase(t, full))

	// Renamed: found by hash all the same.
	renamed := filepath.Join(dir, "renamed.tar")
	assert.NilError(t, os.Rename(full, renamed))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a backup"), 0o600))
	_, rep, _, _ := verifyChain(t, inc, dir)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.Equal(t, rep.Chain[0].Path, renamed)

	// Moved away: a problem naming the file and the hash.
	assert.NilError(t, os.Rename(renamed, filepath.Join(t.TempDir(), "full.tar")))
	_, rep, bases, _ := verifyChain(t, inc, dir)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, !rep.Verified)
	assert.Equal(t, len(bases), 0)
	assert.Equal(t, len(rep.Problems), 1)
	assert.Equal(t, rep.Problems[0].Entry, "full.tar")
	assert.Assert(t, is.Contains(rep.Problems[0].Message, "manifest sha256:"+rep.DependsOn[0].ManifestSHA256))
	assert.Assert(t, is.Contains(rep.Problems[0].Message, "is not in "+dir))

	// Another full backup of the same volume is another backup.
	writeFile(t, dir, "full.tar", sampleVolume(t, tagLink3))
	_, rep, _, _ = verifyChain(t, inc, dir)
	assert.Assert(t, !rep.OK())
}

func TestIncrementalBaseWithoutTheBlob(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	// A base that claims a blob it does not hold: the incremental backup
	// leaves it out, and the chain check finds that the base lacks it.
	b := openBase(t, full)
	extra := blob("layer three, new")
	d, _ := BlobDigest(extra.name)
	b.held[d] = int64(len(extra.data))
	inc, m := writeFile(t, dir, "inc.tar", volume2(t), b)
	assert.Equal(t, m.OmittedBlobs, int64(4))
	_, rep, _, _ := verifyChain(t, inc, dir)
	assert.Assert(t, !rep.OK())
	assert.Equal(t, len(rep.Problems), 1)
	assert.Equal(t, rep.Problems[0].Entry, m.ContentDir+extra.name)
	assert.Assert(t, is.Contains(rep.Problems[0].Message, "full.tar does not hold its bytes"))

	// A live blob of another size than the base's is not that blob: it is
	// written, and reported as corrupt as a full backup would.
	one := blob("layer one")
	vol := volumeTar(t, volumeFile{name: one.name, data: []byte("abcd")})
	_, m2 := writeFile(t, dir, "inc2.tar", vol, openBase(t, full))
	assert.Equal(t, m2.OmittedBlobs, int64(0))
	assert.Equal(t, m2.FormatVersion, FormatVersion, "nothing omitted: a full backup")
	assert.DeepEqual(t, m2.CorruptBlobs, []string{one.name})
}

func TestIncrementalCorruptLiveBlobHeldByBase(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	one := blob("layer one")
	vol := volumeTar(t, volumeFile{name: one.name, data: []byte("layer 0ne")})
	f, err := os.Create(filepath.Join(dir, "inc.tar"))
	assert.NilError(t, err)
	defer f.Close()
	in := info
	in.Since = []*Base{openBase(t, full)}
	_, err = Write(f, bytes.NewReader(vol), in, nil)
	assert.ErrorContains(t, err, "does not match its digest, and the earlier backup full.tar holds good bytes for it: take a full backup")
}

func TestIncrementalChainOfThree(t *testing.T) {
	dir := t.TempDir()
	a, _ := writeFile(t, dir, "a.tar", sampleVolume(t))
	ba := openBase(t, a)
	b, bm := writeFile(t, dir, "b.tar", volume2(t), ba)
	assert.Equal(t, bm.Blobs, int64(1))
	bb := openBase(t, b)
	assert.Assert(t, bb.Incremental)
	assert.Equal(t, bb.Blobs(), 1, "an incremental backup holds only its own blobs")

	// Against both: each blob from the backup that holds its bytes.
	c, cm := writeFile(t, dir, "c.tar", volume3(t), ba, bb)
	assert.Equal(t, len(cm.DependsOn), 2)
	assert.Equal(t, cm.Blobs, int64(1))
	assert.Equal(t, cm.OmittedBlobs, int64(4))
	g, rep, bases, files := verifyChain(t, c, dir)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	assert.Equal(t, len(bases), 2)
	assert.Equal(t, rep.Chain[0].Blobs+rep.Chain[1].Blobs, int64(4))
	var chain bytes.Buffer
	assert.NilError(t, ChainContent(g, rep, bases, files, &chain))
	fullOf, _ := writeFile(t, t.TempDir(), "full3.tar", volume3(t))
	ff, err := os.Open(fullOf)
	assert.NilError(t, err)
	defer ff.Close()
	var plain bytes.Buffer
	assert.NilError(t, Content(ff, cm.ContentDir, &plain))
	assert.DeepEqual(t, contentFiles(t, chain.Bytes()), contentFiles(t, plain.Bytes()))
	check, err := CheckVolume(g, bytes.NewReader(volume3(t)))
	assert.NilError(t, err)
	assert.Assert(t, check.OK(), "%+v", check)

	// Against the incremental one only: what it leaves out is written.
	c2, c2m := writeFile(t, dir, "c2.tar", volume3(t), bb)
	assert.Equal(t, len(c2m.DependsOn), 1)
	assert.Equal(t, c2m.DependsOn[0].File, "b.tar")
	assert.Equal(t, c2m.OmittedBlobs, int64(1))
	assert.Equal(t, c2m.Blobs, int64(4))
	_, rep, _, _ = verifyChain(t, c2, dir)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)

	// Without a, c's chain is broken; c2's is not.
	assert.NilError(t, os.Remove(a))
	_, rep, _, _ = verifyChain(t, c, dir)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, is.Contains(rep.Problems[0].Message, "is not in"))
	_, rep, _, _ = verifyChain(t, c2, dir)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
}

func TestIncrementalManifestRules(t *testing.T) {
	m := Manifest{Format: FormatName, FormatVersion: IncrementalVersion, ContentDir: cdir}
	assert.ErrorContains(t, m.validate(), "depends on no earlier backup")
	m.DependsOn = []Dependency{{ManifestSHA256: "abc"}}
	assert.ErrorContains(t, m.validate(), "is not 64 hex digits")
	h := strings.Repeat("ab", 32)
	m.DependsOn = []Dependency{{ManifestSHA256: h, File: "../x"}}
	assert.ErrorContains(t, m.validate(), "is not a base name")
	m.DependsOn = []Dependency{{ManifestSHA256: h, File: "x.tar"}, {ManifestSHA256: h}}
	assert.ErrorContains(t, m.validate(), "depends twice")
	m.DependsOn = m.DependsOn[:1]
	assert.NilError(t, m.validate())
	m.FormatVersion = FormatVersion
	assert.ErrorContains(t, m.validate(), "only incremental backups (version 2) do")
	m.FormatVersion = 3
	assert.ErrorContains(t, m.validate(), "unknown format version 3")
}

// An omitted entry must name a listed earlier backup, and be a blob.
func TestIncrementalOmittedEntriesChecked(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	inc, _ := writeFile(t, dir, "inc.tar", volume2(t), openBase(t, full))
	data, err := os.ReadFile(inc)
	assert.NilError(t, err)
	// Point one omission at a backup the header does not list.
	b := openBase(t, full)
	i := bytes.Index(data, []byte(`"in":"`+b.ManifestSHA256))
	assert.Assert(t, i > 0)
	copy(data[i+6:], strings.Repeat("0", 64))
	f := openBytes(t, fixManifest(t, data))
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(problemText(rep), "which the manifest does not list"))
}

// fixManifest rewrites the manifest's trailer checksum after an edit.
func fixManifest(t *testing.T, data []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		body, err := io.ReadAll(tr)
		assert.NilError(t, err)
		if hdr.Name == ManifestName {
			lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
			head := bytes.Join(lines[:len(lines)-1], []byte("\n"))
			head = append(head, '\n')
			sum := sha256.Sum256(head)
			body = append(head, []byte(`{"manifestSHA256":"`+hex.EncodeToString(sum[:])+`"}`+"\n")...)
			hdr.Size = int64(len(body))
		}
		assert.NilError(t, tw.WriteHeader(hdr))
		_, err = tw.Write(body)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

// manifestFromEnd finds the manifest where locate does in an archive as
// Write makes it, and nothing in one that is not: an entry after the
// manifest, a record padded past its end, a cut, a file of zeros.
// OpenBaseFromEnd then reads as OpenBase.
func TestManifestFromEnd(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	data, err := os.ReadFile(full)
	assert.NilError(t, err)
	at := func(t *testing.T, data []byte) (int64, int64, bool) {
		p := filepath.Join(t.TempDir(), "x.tar")
		assert.NilError(t, os.WriteFile(p, data, 0o600))
		f, err := os.Open(p)
		assert.NilError(t, err)
		defer f.Close()
		off, size, ok := manifestFromEnd(f, int64(len(data)))
		want, werr := OpenBase(f, p)
		got, gerr := OpenBaseFromEnd(f, p)
		if werr != nil {
			assert.Equal(t, gerr.Error(), werr.Error())
		} else {
			assert.NilError(t, gerr)
			assert.DeepEqual(t, got, want, cmp.AllowUnexported(Base{}))
		}
		return off, size, ok
	}
	off, size, ok := at(t, data)
	assert.Assert(t, ok)
	f, err := os.Open(full)
	assert.NilError(t, err)
	defer f.Close()
	woff, wsize, wok := locate(f, &Report{})
	assert.Assert(t, wok)
	assert.Equal(t, off, woff)
	assert.Equal(t, size, wsize)

	// An entry after the manifest.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "after", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	_, err = tw.Write([]byte("x"))
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	end := len(data) - 1024
	for name, d := range map[string][]byte{
		"entry after":   append(slices.Clone(data[:end]), b.Bytes()...),
		"record padded": append(slices.Clone(data), make([]byte, 10240)...),
		"cut":           data[:end],
		"cut in blocks": data[:len(data)-512],
		"zeros":         make([]byte, 4096),
		"short":         data[:100],
	} {
		_, _, ok := at(t, d)
		assert.Check(t, !ok, name)
	}
}

// HeldPaths names each blob whose bytes the bases hold, where a registry
// keeps it, at its size; an incremental base names only its own blobs.
func TestHeldPaths(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	base := openBase(t, full)
	inc, _ := writeFile(t, dir, "inc.tar", volume2(t), base)
	incBase := openBase(t, inc)

	only := HeldPaths([]*Base{incBase})
	assert.Equal(t, len(only), 1)
	for p, n := range only {
		assert.Equal(t, n, int64(len("layer three, new")))
		d, ok := BlobDigest(p)
		assert.Assert(t, ok, p)
		sum := sha256.Sum256([]byte("layer three, new"))
		assert.Equal(t, d, hex.EncodeToString(sum[:]))
	}
	both := []*Base{base, incBase}
	paths := HeldPaths(both)
	assert.Equal(t, len(paths), 4)
	for p, n := range paths {
		assert.Assert(t, strings.HasPrefix(p, "docker/registry/v2/blobs/sha256/"), p)
		assert.Assert(t, Held(both, p, n), p)
		assert.Assert(t, !Held(both, p, n+1), p)
	}
	assert.Equal(t, len(HeldPaths(nil)), 0)
}

// A blob the agent left out (LeftOutType, its size as the link name) is
// the base's, in an elided stream only, at a size the base holds it.
func TestLeftOutType(t *testing.T) {
	dir := t.TempDir()
	full, _ := writeFile(t, dir, "full.tar", sampleVolume(t))
	base := openBase(t, full)
	layer := blob("layer one")
	stream := func(typeflag byte, link string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o40755}))
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "storage/" + layer.name, Typeflag: typeflag, Linkname: link, Mode: 0o100644}))
		assert.NilError(t, tw.Close())
		return b.Bytes()
	}
	write := func(src []byte, elided bool) (*Manifest, error) {
		in := info
		in.Since, in.Elided = []*Base{base}, elided
		return Write(io.Discard, bytes.NewReader(src), in, nil)
	}
	m, err := write(stream(LeftOutType, "9"), true)
	assert.NilError(t, err)
	assert.Equal(t, m.OmittedBlobs, int64(1))
	assert.Equal(t, m.OmittedBytes, int64(9))
	assert.Equal(t, m.Files, int64(0))

	_, err = write(stream(LeftOutType, "10"), true)
	assert.ErrorContains(t, err, layer.name+" came without its data, and no earlier backup holds a blob of its digest and size")
	_, err = write(stream(LeftOutType, "-1"), true)
	assert.ErrorContains(t, err, `left out, with the size "-1"`)
	_, err = write(stream(LeftOutType, "9"), false)
	assert.ErrorContains(t, err, "of a kind a registry does not write")
}
