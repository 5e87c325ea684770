package imagearchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/jsonl"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const cdir = "dtr-registry-0123456789ab/"

func openBytes(t *testing.T, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "images.tar")
	assert.NilError(t, os.WriteFile(p, b, 0o600))
	f, err := os.Open(p)
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func problemText(rep *Report) string {
	var s []string
	for _, p := range rep.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}

// contentNames lists what Content wrote before it stopped.
func contentNames(b []byte) []string {
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return names
		}
		names = append(names, hdr.Name)
	}
}

// patchType changes the type of the entry named name in a tar, as
// archive/tar's writer will not write some types.
func patchType(t *testing.T, b []byte, name string, typ byte) {
	t.Helper()
	off := bytes.Index(b, []byte(name+"\x00"))
	assert.Assert(t, off >= 0 && off%512 == 0, "header of %s", name)
	b[off+156] = typ
	if typ == tar.TypeGNUSparse {
		copy(b[off+257:], "ustar  \x00") // GNU magic
	}
	blk := b[off : off+512]
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// Every entry that could write outside the volume, or create what a
// registry volume never holds, is refused twice: by Verify, so that a
// restore stops before it writes anything, and by Content, on the way out
// to the volume, should an archive get there unverified.
func TestHostileEntriesAreRefused(t *testing.T) {
	reg := func(name string) tar.Header { return tar.Header{Name: cdir + name, Typeflag: tar.TypeReg, Mode: 0o644} }
	link := func(name, target string) tar.Header {
		return tar.Header{Name: cdir + name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
	}
	hard := func(name, target string) tar.Header {
		return tar.Header{Name: cdir + name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}
	}
	dir := func(name string) tar.Header { return tar.Header{Name: cdir + name, Typeflag: tar.TypeDir, Mode: 0o755} }

	cases := []struct {
		name    string
		hdrs    []tar.Header
		bad     string // the refused entry
		verify  string // in Verify's problems
		content string // in Content's error
	}{
		{"absolute path", []tar.Header{{Name: "/etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o644}},
			"/etc/cron.d/x", "outside the content directory", "is outside"},
		{"parent directory", []tar.Header{reg("../../etc/cron.d/x")}, cdir + "../../etc/cron.d/x", "path leaves the volume", "path leaves the volume"},
		{".. inside the name", []tar.Header{reg("a/../../b")}, cdir + "a/../../b", "path is not clean", "path is not clean"},
		{"name longer than a path", []tar.Header{reg(strings.Repeat("a/", 2100) + "x")}, cdir + strings.Repeat("a/", 2100) + "x",
			"longer than Linux's 4096 byte paths", "longer than Linux's 4096 byte paths"},
		{"symlink to an absolute path", []tar.Header{dir("x/"), link("x/l", "/etc")}, cdir + "x/l", "points outside the volume", "points outside the volume"},
		{"symlink up and out", []tar.Header{dir("x/"), link("x/l", "../../etc")}, cdir + "x/l", "points outside the volume", "points outside the volume"},
		{"symlink with .. after a name", []tar.Header{dir("d/"), link("d/t", "."), link("l", "d/t/../..")}, cdir + "l",
			"the target is not a clean path", "the target is not a clean path"},
		{"symlink under a symlink", []tar.Header{dir("a/"), link("a/l", ".."), link("a/l/m", "../..")}, cdir + "a/l/m",
			"lies under the symlink a/l", "lies under the symlink a/l"},
		{"file written through a symlink", []tar.Header{dir("sub/"), link("l", "sub"), reg("l/x")}, cdir + "l/x",
			"lies under the symlink l", "lies under the symlink l"},
		{"file over a symlink", []tar.Header{dir("sub/"), link("l", "sub"), reg("l")}, cdir + "l",
			"a second entry for the symlink l", "a second entry for the symlink l"},
		{"hard link out", []tar.Header{hard("x", "../../etc/passwd")}, cdir + "x", `a hard link to "../../etc/passwd": refused`, "a hard link"},
		{"hard link to an absolute path", []tar.Header{hard("x", "/etc/shadow")}, cdir + "x", `a hard link to "/etc/shadow": refused`, "a hard link"},
		{"hard link to a name not in the archive", []tar.Header{hard("x", cdir+"nothing")}, cdir + "x", "a hard link", "a hard link"},
		{"hard link to a file of the archive", []tar.Header{reg("a"), hard("b", cdir+"a")}, cdir + "b", "a hard link", "a hard link"},
		{"character device", []tar.Header{{Name: cdir + "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}}, cdir + "null",
			"a character device: refused", "a character device"},
		{"block device", []tar.Header{{Name: cdir + "sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o660}}, cdir + "sda",
			"a block device: refused", "a block device"},
		{"fifo", []tar.Header{{Name: cdir + "pipe", Typeflag: tar.TypeFifo, Mode: 0o644}}, cdir + "pipe", "a fifo: refused", "a fifo"},
		{"contiguous file", []tar.Header{{Name: cdir + "c", Typeflag: tar.TypeCont, Mode: 0o644}}, cdir + "c", `entry type '7': refused`, "entry type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := openBytes(t, hostileArchive(t, tc.hdrs...))
			rep, err := Verify(f)
			assert.NilError(t, err)
			assert.Assert(t, !rep.OK() && !rep.Verified)
			assert.Assert(t, is.Contains(problemText(rep), shortName(tc.bad)))
			assert.Assert(t, is.Contains(problemText(rep), tc.verify))

			var out bytes.Buffer
			err = Content(f, cdir, &out)
			assert.ErrorContains(t, err, tc.content)
			assert.ErrorContains(t, err, "refusing to restore it")
			// what comes before the refused entry may have been written,
			// the refused entry not
			in, written := 0, 0
			for _, h := range tc.hdrs {
				if h.Name == tc.bad {
					in++
				}
			}
			for _, n := range contentNames(out.Bytes()) {
				if cdir+n == tc.bad {
					written++
				}
			}
			assert.Equal(t, written, in-1, "Content wrote %s", tc.bad)
		})
	}
}

// paxRecord formats a PAX record: its length, itself included, then key=value.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec) + len(strconv.Itoa(len(rec)))
	for len(strconv.Itoa(n))+len(rec) != n {
		n = len(strconv.Itoa(n)) + len(rec)
	}
	return strconv.Itoa(n) + rec
}

func shortName(s string) string {
	if len(s) > 1024 {
		return s[:1024]
	}
	return s
}

// Sparse files expand to what their header says, not what the archive
// holds: refused, before a byte of them is hashed or written.
func TestSparseFilesAreRefused(t *testing.T) {
	// old GNU sparse: type 'S'
	b := hostileArchive(t, tar.Header{Name: cdir + "sparse", Typeflag: tar.TypeReg, Mode: 0o644})
	patchType(t, b, cdir+"sparse", tar.TypeGNUSparse)
	f := openBytes(t, b)
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(problemText(rep), cdir+"sparse: a sparse file: refused"))
	assert.ErrorContains(t, Content(f, cdir, io.Discard), "a sparse file")

	// GNU sparse 1.0 in PAX records: one byte of data, a TiB of holes
	records := ""
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", cdir + "huge"}, {"GNU.sparse.realsize", "1099511627776"}} {
		records += paxRecord(kv[0], kv[1])
	}
	sparseMap := "1\n0\n1\n"
	data := sparseMap + strings.Repeat("\x00", 512-len(sparseMap)) + "x"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: cdir, Typeflag: tar.TypeDir, Mode: 0o755}))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "paxheader", Typeflag: tar.TypeReg, Size: int64(len(records)), Format: tar.FormatUSTAR}))
	tw.Write([]byte(records))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "sparse-data", Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644, Format: tar.FormatUSTAR}))
	tw.Write([]byte(data))
	assert.NilError(t, tw.Close())
	b = buf.Bytes()
	patchType(t, b, "paxheader", tar.TypeXHeader)
	hdr, err := func() (*tar.Header, error) {
		tr := tar.NewReader(bytes.NewReader(b))
		tr.Next()
		return tr.Next()
	}()
	assert.NilError(t, err)
	assert.Equal(t, hdr.Name, cdir+"huge", "archive/tar reads the crafted sparse file")
	assert.Equal(t, hdr.Size, int64(1<<40))

	f = openBytes(t, b)
	assert.ErrorContains(t, Content(f, cdir, io.Discard), "a sparse file: refused")
}

// Extended attributes, such as file capabilities, are not carried to the
// volume: Content writes names, kinds, modes, owners and times only.
func TestContentCarriesNoExtendedAttributes(t *testing.T) {
	h := tar.Header{Name: cdir + "docker/x", Typeflag: tar.TypeReg, Mode: 0o755,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00", "SCHILY.xattr.user.x": "y"}}
	f := openBytes(t, hostileArchive(t, tar.Header{Name: cdir + "docker/", Typeflag: tar.TypeDir, Mode: 0o755}, h))
	rep, err := Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), problemText(rep))
	var out bytes.Buffer
	assert.NilError(t, Content(f, cdir, &out))
	tr := tar.NewReader(&out)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		assert.Equal(t, len(hdr.PAXRecords), 0, hdr.Name)
	}
}

// The backup refuses what Verify would: a volume cannot be written into an
// archive that its restore would refuse.
func TestWriteRefusesWhatVerifyRefuses(t *testing.T) {
	vol := volumeTar(t, volumeFile{name: "docker/l", link: "sub/../.."})
	_, err := Write(io.Discard, bytes.NewReader(vol), info, nil)
	assert.ErrorContains(t, err, "not a clean path")

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "storage/l", Typeflag: tar.TypeSymlink, Linkname: ".", Mode: 0o777})
	tw.WriteHeader(&tar.Header{Name: "storage/l/x", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	_, err = Write(io.Discard, bytes.NewReader(buf.Bytes()), info, nil)
	assert.ErrorContains(t, err, "lies under the symlink l")

	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "storage/dev", Typeflag: tar.TypeChar, Mode: 0o644})
	tw.Close()
	_, err = Write(io.Discard, bytes.NewReader(buf.Bytes()), info, nil)
	assert.ErrorContains(t, err, "of a kind a registry does not write")
}

// The manifest is 0600 however the volume's files are: backups hold private
// data.
func TestManifestEntryIs0600(t *testing.T) {
	f, _ := write(t, sampleVolume(t))
	_, err := f.Seek(0, io.SeekStart)
	assert.NilError(t, err)
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("no manifest")
		}
		assert.NilError(t, err)
		if hdr.Name == ManifestName {
			assert.Equal(t, hdr.Mode, int64(0o600))
			return
		}
	}
}

// The manifest's one list, the corrupt blobs, is refused by count before it
// is decoded, and the backup refuses to write more than a reader accepts.
func TestManifestBounds(t *testing.T) {
	var h Manifest
	head := fmt.Sprintf(`{"format":"docker-dtr-images","formatVersion":1,"contentDir":%q,"corruptBlobs":[%s""]}`, cdir, strings.Repeat(`"",`, manifestLimits.HeaderValues+100))
	_, err := jsonl.NewReader(strings.NewReader(head+"\n"), &h, manifestLimits)
	assert.ErrorContains(t, err, fmt.Sprintf("manifest header: more than %d JSON values", MaxCorruptBlobs+64+8*MaxDependencies))

	m := Manifest{Format: FormatName, FormatVersion: FormatVersion, ContentDir: cdir}
	m.CorruptBlobs = []string{"not/a/blob"}
	assert.ErrorContains(t, m.validate(), `lists "not/a/blob" as a corrupt blob`)
	m.CorruptBlobs = nil
	m.Files = -1
	assert.ErrorContains(t, m.validate(), "negative totals")
}
