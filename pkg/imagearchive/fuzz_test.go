package imagearchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/tartest"
)

var fuzzInfo = Info{Tool: "fuzz", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Volume: "dtr-registry-0123456789ab",
	VolumeDriver: "local", Started: time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC),
	Clock: func() time.Time { return time.Date(2026, 11, 25, 6, 1, 0, 0, time.UTC) }}

// writeSeed writes an image archive of vol with the package's own writer,
// at a fixed time so that the seeds are the same on every run.
func writeSeed(tb testing.TB, vol []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := Write(&buf, bytes.NewReader(vol), fuzzInfo, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// incrementalSeed is an incremental archive of a grown sample volume
// against the archive base.
func incrementalSeed(tb testing.TB, base []byte) []byte {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), "base.tar")
	if err := os.WriteFile(p, base, 0o600); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b, err := OpenBase(f, p)
	if err != nil {
		tb.Fatal(err)
	}
	in := fuzzInfo
	in.Since = []*Base{b}
	var buf bytes.Buffer
	if _, err := Write(&buf, bytes.NewReader(sampleVolume(tb, blob("layer three, new"))), in, nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// hostileArchive is an image archive around one crafted entry, with a
// manifest that lists it, so that only the entry is wrong.
func hostileArchive(tb testing.TB, hdrs ...tar.Header) []byte {
	tb.Helper()
	const dir = "dtr-registry-0123456789ab/"
	var content bytes.Buffer
	tw := tar.NewWriter(&content)
	var lines []string
	var totals Totals
	add := func(h tar.Header, data string) {
		h.Size = int64(len(data))
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	add(tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}, "")
	for _, h := range hdrs {
		data := ""
		if h.Typeflag == tar.TypeReg {
			data = "x"
		}
		add(h, data)
		rel := strings.TrimPrefix(h.Name, dir)
		switch h.Typeflag {
		case tar.TypeReg:
			sum := sha256.Sum256([]byte(data))
			lines = append(lines, fmt.Sprintf(`{"name":%q,"type":"file","mode":%d,"size":%d,"sha256":%q}`, rel, h.Mode, len(data), hex.EncodeToString(sum[:])))
			totals.Files++
			totals.Bytes += int64(len(data))
		case tar.TypeDir:
			lines = append(lines, fmt.Sprintf(`{"name":%q,"type":"dir","mode":%d}`, rel, h.Mode))
			totals.Dirs++
		case tar.TypeSymlink:
			lines = append(lines, fmt.Sprintf(`{"name":%q,"type":"symlink","mode":%d,"link":%q}`, rel, h.Mode, h.Linkname))
			totals.Links++
		default:
			lines = append(lines, fmt.Sprintf(`{"name":%q,"type":"file","mode":%d}`, rel, h.Mode))
		}
	}
	head := fmt.Sprintf(`{"format":"docker-dtr-images","formatVersion":1,"tool":"fuzz","dtrVersion":"2.9.4","replicaId":"0123456789ab","volume":"dtr-registry-0123456789ab","contentDir":%q,"started":"2026-11-25T06:00:00Z","finished":"2026-11-25T06:01:00Z","files":%d,"dirs":%d,"links":%d,"bytes":%d,"blobs":0,"uploadFiles":0,"uploadBytes":0,"corruptBlobs":[]}`,
		dir, totals.Files, totals.Dirs, totals.Links, totals.Bytes)
	body := head + "\n"
	for _, l := range lines {
		body += l + "\n"
	}
	sum := sha256.Sum256([]byte(body))
	body += `{"manifestSHA256":"` + hex.EncodeToString(sum[:]) + "\"}\n"
	add(tar.Header{Name: ManifestName, Typeflag: tar.TypeReg, Mode: 0o600}, body)
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return content.Bytes()
}

func imageSeeds(tb testing.TB) [][]byte {
	bad := blob("layer three")
	bad.data = []byte("layer thrEE")
	good := writeSeed(tb, sampleVolume(tb))
	seeds := [][]byte{
		good,
		writeSeed(tb, sampleVolume(tb, bad, volumeFile{name: "docker/registry/v2/repositories/team/app/_manifests/tags/latest", link: "1.0"})),
		writeSeed(tb, volumeTar(tb)), // an empty volume
		incrementalSeed(tb, good),
	}
	const d = "dtr-registry-0123456789ab/"
	for _, h := range []tar.Header{
		{Name: d + "x/link", Typeflag: tar.TypeSymlink, Linkname: "../../../etc", Mode: 0o777},
		{Name: d + "x/link", Typeflag: tar.TypeSymlink, Linkname: "/etc", Mode: 0o777},
		{Name: d + "x/hard", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd", Mode: 0o644},
		{Name: d + "x/dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		{Name: d + "x/fifo", Typeflag: tar.TypeFifo, Mode: 0o644},
		{Name: d + "../x", Typeflag: tar.TypeReg, Mode: 0o644},
	} {
		seeds = append(seeds, hostileArchive(tb, h))
	}
	seeds = append(seeds, hostileArchive(tb,
		tar.Header{Name: d + "a/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: d + "a/l", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777},
		tar.Header{Name: d + "a/l/m", Typeflag: tar.TypeSymlink, Linkname: "../..", Mode: 0o777},
	))
	for _, cut := range []int{1024, len(good) / 2, len(good) - 1024} {
		seeds = append(seeds, bytes.Clone(good[:cut]))
	}
	for _, at := range []int{100, 600, len(good) / 2, len(good) - 1536} {
		c := bytes.Clone(good)
		c[at] ^= 0x08
		seeds = append(seeds, c)
	}
	return seeds
}

// FuzzVerify reads arbitrary bytes as an image archive with
// IsImageArchive, Inspect, Verify, Content (the restore's way out to the
// volume) and CheckVolume. None may panic or hang or take memory the input
// does not hold; whatever Content lets out, verified or not, must stay
// inside the volume; and an archive Verify passes must restore whole.
func FuzzVerify(f *testing.F) {
	for _, s := range imageSeeds(f) {
		f.Add(s)
	}
	volume := sampleVolume(f)
	// one file for every input: a fuzzing process runs one input at a time
	p := filepath.Join(f.TempDir(), "images.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, p, volume, data)
		// The same with every tar header's checksum put right, so that a
		// change to a header's fields reaches more than the tar reader.
		if fixed := tartest.FixChecksums(data); fixed != nil {
			check(t, p, volume, fixed)
		}
	})
}

// check runs one input through everything that reads an archive.
func check(t *testing.T, p string, volume, data []byte) {
	file := tartest.Open(t, p, data)

	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	if _, err := IsImageArchive(file); err != nil {
		t.Fatalf("IsImageArchive: %v", err)
	}
	ins, err := Inspect(file)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	rep, err := Verify(file)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Read as a stream in uneven pieces, as a decryption gives it: the
	// same report.
	srep, err := VerifyStream(bytesSource(data))
	if err != nil {
		t.Fatalf("VerifyStream: %v", err)
	}
	if srep.Verified != rep.Verified || len(srep.Problems) != len(rep.Problems) || srep.ManifestSHA256 != rep.ManifestSHA256 {
		t.Fatalf("VerifyStream %v, Verify %v", srep.Problems, rep.Problems)
	}
	dir := rep.ContentDir
	if dir == "" {
		dir = firstName(data)
	}
	var out bytes.Buffer
	contentErr := Content(file, dir, &out)
	if out.Len() > 4*len(data)+64<<10 {
		t.Fatalf("Content wrote %d bytes for %d bytes of input", out.Len(), len(data))
	}
	checkVolumeTar(t, out.Bytes())
	if check, err := CheckVolume(file, bytes.NewReader(volume)); err == nil && check == nil {
		t.Fatalf("CheckVolume: no check and no error")
	}
	io.Copy(io.Discard, file) // the restore path reads to the end too

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20+64*uint64(len(data)) {
		t.Fatalf("%d bytes allocated for %d bytes of input", alloc, len(data))
	}
	if len(rep.Problems) > maxProblems {
		t.Fatalf("more than %d problems kept", maxProblems)
	}

	if !rep.OK() {
		if rep.Verified {
			t.Fatalf("verified with problems: %v", rep.Problems)
		}
		return
	}
	// Verified: the restore writes all of it, and the volume it makes
	// checks against the manifest without error.
	if !rep.Verified || !ins.OK() {
		t.Fatalf("OK but not verified, or inspect disagrees: %v", ins.Problems)
	}
	if contentErr != nil {
		t.Fatalf("verified, but Content refuses it: %v", contentErr)
	}
	if !rep.Incremental() {
		var streamed bytes.Buffer
		if _, err := ContentStream(bytesSource(data), srep, nil, &streamed); err != nil {
			t.Fatalf("verified, but ContentStream refuses it: %v", err)
		}
		if !bytes.Equal(streamed.Bytes(), out.Bytes()) {
			t.Fatalf("ContentStream wrote other bytes than Content")
		}
	}
	got := totalsOf(t, out.Bytes())
	if got.Files != rep.Files || got.Dirs != rep.Dirs || got.Links != rep.Links || got.Bytes != rep.Bytes {
		t.Fatalf("restored %+v, the report says %+v", got, rep.Totals)
	}
	if _, err := CheckVolume(file, bytes.NewReader(rewrap(t, out.Bytes()))); err != nil {
		t.Fatalf("checking the restored volume: %v", err)
	}
}

// firstName is the archive's first entry name, as Content's content
// directory when the manifest says none.
func firstName(data []byte) string {
	hdr, err := tar.NewReader(bytes.NewReader(data)).Next()
	if err != nil {
		return "registry/"
	}
	return hdr.Name
}

// checkVolumeTar checks, independently of the package's own checks, that a
// tar Content wrote cannot write outside the volume it is extracted into.
func checkVolumeTar(t *testing.T, data []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	links := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			return // Content stopped in the middle: what it wrote so far counts
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("Content wrote %q", hdr.Name)
		}
		for p := path.Dir(name); p != "."; p = path.Dir(p) {
			if links[p] {
				t.Fatalf("Content wrote %q under the symlink %q", hdr.Name, p)
			}
		}
		if links[name] {
			t.Fatalf("Content wrote %q over a symlink", hdr.Name)
		}
		for k := range hdr.PAXRecords {
			if k != "path" && k != "linkpath" && k != "uname" && k != "gname" && k != "uid" && k != "gid" && k != "size" && k != "mtime" {
				t.Fatalf("Content passed PAX record %q", k)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeReg:
		case tar.TypeSymlink:
			target := hdr.Linkname
			if target == "" || path.IsAbs(target) || path.Clean(target) != target {
				t.Fatalf("Content wrote %q linking to %q", hdr.Name, target)
			}
			if r := path.Join(path.Dir(name), target); r == ".." || strings.HasPrefix(r, "../") {
				t.Fatalf("Content wrote %q linking out to %q", hdr.Name, target)
			}
			links[name] = true
		default:
			t.Fatalf("Content wrote %q of type %q", hdr.Name, hdr.Typeflag)
		}
	}
}

// totalsOf counts a content tar as the manifest counts a volume.
func totalsOf(t *testing.T, data []byte) Totals {
	t.Helper()
	var got Totals
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("reading what Content wrote: %v", err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			got.Dirs++
		case tar.TypeSymlink:
			got.Links++
		case tar.TypeReg:
			n, _ := io.Copy(io.Discard, tr)
			got.Files++
			got.Bytes += n
		}
	}
}
