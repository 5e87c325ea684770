package agent

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// sendVolume makes a registry-like volume: blobs, a repository's links and
// manifests, an unfinished upload, and a symlink. It returns the blobs'
// paths inside the volume.
func sendVolume(t *testing.T, nblobs int) (dir string, blobs []string) {
	dir = filepath.Join(t.TempDir(), "storage")
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, data, 0o644))
	}
	for i := range nblobs {
		data := bytes.Repeat([]byte{byte(i)}, 20000+i)
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		name := "docker/registry/v2/blobs/sha256/" + d[:2] + "/" + d + "/data"
		write(name, data)
		write("docker/registry/v2/repositories/r/_layers/sha256/"+d+"/link", []byte("sha256:"+d))
		blobs = append(blobs, name)
	}
	write("docker/registry/v2/repositories/r/_manifests/tags/1/current/link", []byte("sha256:x"))
	write("docker/registry/v2/repositories/r/_uploads/u1/data", make([]byte, 5000))
	write("docker/registry/v2/repositories/r/_uploads/u1/startedat", []byte("now"))
	assert.NilError(t, os.Symlink("r", filepath.Join(dir, "docker/registry/v2/repositories/alias")))
	return dir, blobs
}

func sendTar(t *testing.T, dir string, omit map[string]int64) []byte {
	t.Helper()
	var b bytes.Buffer
	assert.NilError(t, SendTar(dir, omit, &b, nil))
	return b.Bytes()
}

func manifestOf(t *testing.T, archive []byte) []imagearchive.Entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		assert.NilError(t, err)
		if hdr.Name != imagearchive.ManifestName {
			continue
		}
		var entries []imagearchive.Entry
		sc := bufio.NewScanner(tr)
		sc.Buffer(nil, 1<<20)
		sc.Scan() // the header line
		for sc.Scan() {
			var e imagearchive.Entry
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Name != "" {
				entries = append(entries, e)
			}
		}
		return entries
	}
}

// The incremental backup from the agent's selective tar is the one that
// reading the whole volume gives, entry for entry: the blobs left out are
// listed as the base's, and only the new blobs' bytes cross.
func TestSendTarIncrementalSameAsWhole(t *testing.T) {
	dir, blobs := sendVolume(t, 10)
	clock := func() time.Time { return time.Unix(1700000000, 0) }
	// Elided throughout: the agent never sends an upload's data; with no
	// blob left out, every blob is read and hashed, as from the engine.
	info := imagearchive.Info{Volume: "vol", ReplicaID: "0123456789ab", Started: clock(), Clock: clock, Elided: true}

	// The base: a full backup of the first 8 blobs' volume state.
	var full bytes.Buffer
	wholeTar := sendTar(t, dir, nil)
	_, err := imagearchive.Write(&full, bytes.NewReader(wholeTar), info, nil)
	assert.NilError(t, err)
	basePath := filepath.Join(t.TempDir(), "full.tar")
	assert.NilError(t, os.WriteFile(basePath, full.Bytes(), 0o600))
	f, err := os.Open(basePath)
	assert.NilError(t, err)
	defer f.Close()
	base, err := imagearchive.OpenBase(f, basePath)
	assert.NilError(t, err)

	// Two more blobs.
	for i := 100; i < 102; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 3000)
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "docker/registry/v2/blobs/sha256", d[:2], d, "data")
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, data, 0o644))
	}
	info.Since = []*imagearchive.Base{base}
	var old bytes.Buffer
	mOld, err := imagearchive.Write(&old, bytes.NewReader(sendTar(t, dir, nil)), info, nil)
	assert.NilError(t, err)

	omit := map[string]int64{}
	for i, name := range blobs {
		omit[name] = int64(20000 + i)
	}
	elided := sendTar(t, dir, omit)
	assert.Assert(t, len(elided) < 4*len(wholeTar)/10, "the elided tar is %d bytes, the whole %d", len(elided), len(wholeTar))
	// The left-out blobs' lines come from the listing, as the plugin's.
	info.LeftOut = func() []imagearchive.LeftOut { return leftOut(t, dir, omit) }
	var inc bytes.Buffer
	mNew, err := imagearchive.Write(&inc, bytes.NewReader(elided), info, nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, mNew, mOld, cmpopts.IgnoreUnexported(imagearchive.Manifest{}))
	assert.DeepEqual(t, manifestOf(t, inc.Bytes()), manifestOf(t, old.Bytes()))
	assert.Equal(t, mNew.OmittedBlobs, int64(10))
	assert.Equal(t, mNew.Blobs, int64(2))
	assert.Equal(t, mNew.UploadFiles, int64(2))
	assert.Equal(t, mNew.UploadBytes, int64(5003))
	assert.DeepEqual(t, inc.Bytes(), old.Bytes())

	// Without a listing (--no-listing): the list first, then the tar in
	// one walk, a blob left out as its header without data: the same
	// backup, with no listing to say what was left out.
	var list strings.Builder
	for name, size := range omit {
		fmt.Fprintf(&list, "%d %s\n\n", size, name) // with keepalives
	}
	list.WriteString("end\n")
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(list.String())) // and held open: the lease
	var unlisted bytes.Buffer
	assert.NilError(t, Run(Options{Send: dir, NoListing: true}, pr, nopWriteCloser{&unlisted}, io.Discard))
	assert.Assert(t, !bytes.Contains(unlisted.Bytes(), []byte(`"type":"file"`)), "no listing")
	unlistedInfo := info
	unlistedInfo.LeftOut = nil
	var inc2 bytes.Buffer
	_, err = imagearchive.Write(&inc2, bytes.NewReader(unlisted.Bytes()), unlistedInfo, nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, inc2.Bytes(), old.Bytes())
	marked := 0
	tr := tar.NewReader(bytes.NewReader(unlisted.Bytes()))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		if size, left := omit[strings.TrimPrefix(hdr.Name, "storage/")]; left {
			marked++
			assert.Equal(t, hdr.Typeflag, byte(LeftOutType))
			assert.Equal(t, hdr.Size, int64(0))
			assert.Equal(t, hdr.Linkname, strconv.FormatInt(size, 10))
			assert.Equal(t, len(hdr.PAXRecords), 0, "one block")
		}
	}
	assert.Equal(t, marked, len(omit))
	assert.Equal(t, byte(LeftOutType), imagearchive.LeftOutType)
	// A plugin gone before its list ends: an error, nothing sent.
	unlisted.Reset()
	err = Run(Options{Send: dir, NoListing: true}, io.NopCloser(strings.NewReader("12 x\n")), nopWriteCloser{&unlisted}, io.Discard)
	assert.ErrorContains(t, err, "agent: --send "+dir+" --no-listing: reading the files to leave out: the plugin's list ended before its end line")
	assert.Equal(t, unlisted.Len(), 0)
	assert.Error(t, Run(Options{Send: dir, NoListing: true, Bucket: "db:28015"}, pr, nopWriteCloser{&unlisted}, io.Discard), "agent: --no-listing goes with --send, on a directory")

	// A blob whose size is not the one named is sent whole.
	wrong := map[string]int64{blobs[0]: 1}
	tr = tar.NewReader(bytes.NewReader(sendTar(t, dir, wrong)))
	for {
		hdr, err := tr.Next()
		assert.NilError(t, err)
		if strings.HasSuffix(hdr.Name, blobs[0]) {
			assert.Equal(t, hdr.Size, int64(20000))
			assert.Equal(t, hdr.PAXRecords[OmittedSize], "")
			break
		}
	}

	// Nothing of a blob left out crosses, not even its header.
	tr = tar.NewReader(bytes.NewReader(elided))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		_, left := omit[strings.TrimPrefix(hdr.Name, "storage/")]
		assert.Assert(t, !left, hdr.Name)
	}

	// A blob named to leave out but sent whole (its size changed since)
	// is read and hashed, and listed once.
	omit[blobs[0]] = 1
	var whole bytes.Buffer
	mWhole, err := imagearchive.Write(&whole, bytes.NewReader(sendTar(t, dir, omit)), info, nil)
	assert.NilError(t, err)
	assert.Equal(t, mWhole.OmittedBlobs, int64(10))
	assert.Equal(t, mWhole.Blobs, int64(2))
	assert.DeepEqual(t, whole.Bytes(), old.Bytes())
}

// leftOut is what the plugin makes of the listing: the files it leaves
// out, in the listing's order, with their modes.
func leftOut(t *testing.T, dir string, omit map[string]int64) []imagearchive.LeftOut {
	t.Helper()
	var b bytes.Buffer
	assert.NilError(t, List(dir, &b))
	var l []imagearchive.LeftOut
	dec := json.NewDecoder(&b)
	for {
		var e ListEntry
		assert.NilError(t, dec.Decode(&e))
		if e.Type == "end" {
			return l
		}
		if n, ok := omit[e.Name]; ok && e.Type == "file" {
			l = append(l, imagearchive.LeftOut{Name: e.Name, Size: n, Mode: e.Mode})
		}
	}
}

// The listing's mode of a file is its tar header's, setuid and all.
func TestListModeIsHeaders(t *testing.T) {
	dir := t.TempDir()
	for i, mode := range []os.FileMode{0o644, 0o600, 0o755 | os.ModeSetuid, 0o640 | os.ModeSetgid | os.ModeSticky} {
		p := filepath.Join(dir, string(rune('a'+i)))
		assert.NilError(t, os.WriteFile(p, nil, 0o600))
		assert.NilError(t, os.Chmod(p, mode))
		info, err := os.Lstat(p)
		assert.NilError(t, err)
		hdr, err := header("storage", "x", info, "")
		assert.NilError(t, err)
		assert.Equal(t, tarMode(info), hdr.Mode, "%v", mode)
	}
}

// The sent headers read back as header made them, and a registry's
// paths (over 100 bytes) take one block each: archive/tar writes a PAX
// header as USTAR, the path in its prefix and name, where nothing needs a
// PAX record. The stream is its headers' blocks, its files' padded data
// and the end.
// A name that USTAR cannot split comes in PAX, as does an upload's file,
// sent without its data, with its size in a PAX record.
func TestSentHeadersOneBlock(t *testing.T) {
	dir, _ := sendVolume(t, 3)
	long := strings.Repeat("x", 120)
	writeFiles(t, dir, map[string][]byte{"docker/" + long: []byte("long")})
	stream := sendTar(t, dir, nil)
	tr := tar.NewReader(bytes.NewReader(stream))
	blocks := int64(2) // the end
	for {
		got, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		rel := strings.TrimPrefix(got.Name, "storage/")
		info, err := os.Lstat(filepath.Join(dir, rel))
		assert.NilError(t, err)
		want, err := header("storage", rel, info, got.Linkname)
		assert.NilError(t, err)
		got.Format, got.PAXRecords = want.Format, want.PAXRecords
		if isUpload(rel) && got.Typeflag == tar.TypeReg {
			got.Size = want.Size // sent without its data
		}
		assert.DeepEqual(t, got, want)
		switch {
		case strings.HasSuffix(rel, long):
			assert.Check(t, len(rel) > 100)
			blocks += 3 // a PAX record of the path
		case isUpload(rel) && got.Typeflag == tar.TypeReg:
			blocks += 3 // a PAX record of its size
		default:
			blocks++
		}
		if got.Typeflag == tar.TypeReg && !isUpload(rel) {
			blocks += (got.Size + 511) / 512
		}
	}
	assert.Equal(t, int64(len(stream)), blocks*512)
}

// A blob left out that no base holds is refused: nothing is trusted that
// an earlier backup's manifest does not vouch for.
func TestElidedBlobNoBaseHolds(t *testing.T) {
	dir, blobs := sendVolume(t, 2)
	omit := map[string]int64{blobs[1]: 20001}
	elided := sendTar(t, dir, omit)
	info := imagearchive.Info{Volume: "vol", ReplicaID: "0123456789ab", Started: time.Now(), Elided: true,
		LeftOut: func() []imagearchive.LeftOut { return leftOut(t, dir, omit) }}
	_, err := imagearchive.Write(io.Discard, bytes.NewReader(elided), info, nil)
	assert.Assert(t, is.ErrorContains(err, blobs[1]+" came without its data, and no earlier backup holds a blob of its digest and size"))
}

func TestOmittedSizeRecordIsImagearchives(t *testing.T) {
	assert.Equal(t, OmittedSize, imagearchive.OmittedSizeRecord)
}

// Send lists, reads what to leave out (keepalives between the lines), and
// sends the tar; it stops when the plugin's list never ends.
func TestSend(t *testing.T) {
	dir, blobs := sendVolume(t, 3)
	inR, inW := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- Send(dir, inR, &out, time.Minute) }()
	_, err := io.WriteString(inW, "\n20000 "+blobs[0]+"\n\nend\n")
	assert.NilError(t, err)
	assert.NilError(t, <-done)
	inW.Close()

	br := bufio.NewReader(&out)
	var list []ListEntry
	for {
		line, err := br.ReadBytes('\n')
		assert.NilError(t, err)
		var e ListEntry
		assert.NilError(t, json.Unmarshal(line, &e))
		if e.Type == "end" {
			break
		}
		list = append(list, e)
	}
	assert.Equal(t, list[0].Name, "")
	assert.Equal(t, list[0].Type, "dir")
	types := map[string]string{}
	for _, e := range list {
		types[e.Name] = e.Type
		if e.Name == blobs[1] {
			assert.Equal(t, e.Size, int64(20001))
			assert.Assert(t, e.MTime > 0)
		}
	}
	assert.Equal(t, types["docker/registry/v2/repositories/alias"], "symlink")
	assert.Equal(t, types["docker/"], "dir")
	assert.Equal(t, types[blobs[2]], "file")

	// The send goes over the listing's entries, not a walk of its own,
	// and gives what a walk does.
	rest, err := io.ReadAll(br)
	assert.NilError(t, err)
	assert.DeepEqual(t, rest, sendTar(t, dir, map[string]int64{blobs[0]: 20000}))
	tr := tar.NewReader(bytes.NewReader(rest))
	sizes := map[string]int64{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		n, err := io.Copy(io.Discard, tr)
		assert.NilError(t, err)
		sizes[strings.TrimPrefix(hdr.Name, "storage/")] = n
		if hdr.Name == "storage/" {
			assert.Equal(t, hdr.Mode&0o170000, int64(0o40000))
		}
	}
	assert.Equal(t, len(sizes), len(list)-1)
	_, sent := sizes[blobs[0]]
	assert.Assert(t, !sent, "left out, header and all")
	assert.Equal(t, sizes[blobs[1]], int64(20001))
	assert.Equal(t, sizes["docker/registry/v2/repositories/r/_uploads/u1/data"], int64(0), "an upload's data never crosses")

	// A list that is not one.
	err = Send(dir, strings.NewReader("x y\nend\n"), io.Discard, time.Minute)
	assert.Assert(t, is.ErrorContains(err, `"x y" is not a size and a name`))
	err = Send(dir, strings.NewReader("1 a\n"), io.Discard, time.Minute)
	assert.Assert(t, is.ErrorContains(err, "ended before its end line"))
}

// Stdin is the lease from the start: keepalives while the plugin chooses
// keep the agent going; silence makes it stop.
func TestSendLease(t *testing.T) {
	dir, _ := sendVolume(t, 2)
	inR, inW := io.Pipe()
	defer inW.Close()
	done := make(chan error, 1)
	go func() { done <- Send(dir, inR, io.Discard, 100*time.Millisecond) }()
	for range 10 {
		time.Sleep(30 * time.Millisecond)
		_, err := io.WriteString(inW, "\n")
		assert.NilError(t, err)
	}
	_, err := io.WriteString(inW, "end\n")
	assert.NilError(t, err)
	assert.NilError(t, <-done)

	silent, w := io.Pipe()
	defer w.Close()
	err = Send(dir, silent, io.Discard, 100*time.Millisecond)
	assert.Assert(t, is.ErrorContains(err, "no word from the plugin"))
}

// Send's tar is of the entries it listed: a file made after the listing
// is not in it (a second walk would have found it).
func TestSendIsOfTheListing(t *testing.T) {
	dir, _ := sendVolume(t, 2)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Send(dir, inR, outW, time.Minute); outW.Close() }()
	br := bufio.NewReader(outR)
	for {
		line, err := br.ReadBytes('\n')
		assert.NilError(t, err)
		if strings.Contains(string(line), `"type":"end"`) {
			break
		}
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "late"), []byte("x"), 0o644))
	// A file gone since the listing is skipped, not an error.
	gone := "docker/registry/v2/repositories/r/_manifests/tags/1/current/link"
	assert.NilError(t, os.Remove(filepath.Join(dir, gone)))
	go io.WriteString(inW, "end\n")
	tr := tar.NewReader(br)
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(t, err)
		assert.Assert(t, hdr.Name != "storage/late")
		assert.Assert(t, hdr.Name != "storage/"+gone)
		n++
	}
	assert.NilError(t, <-done)
	assert.Assert(t, n > 10)
	inW.Close()
}

// A walk ahead of its reader gives the walk's entries in its order,
// whatever its bound, and stops when its reader does.
func TestAheadWalk(t *testing.T) {
	dir, _ := sendVolume(t, 600)
	var want []string
	assert.NilError(t, walk(dir, nil, func(rel string, _ fs.FileInfo, _ string) error {
		want = append(want, rel)
		return nil
	}))
	assert.Assert(t, len(want) > 2*walkBatch)
	for _, ahead := range []int{1, walkBatch, 1 << 20} {
		w := startWalk(dirTree(dir), nil, ahead)
		time.Sleep(10 * time.Millisecond) // let it walk ahead
		var got []string
		assert.NilError(t, w.each(nil, func(rel string, _ fs.FileInfo, _ string) error {
			got = append(got, rel)
			return nil
		}))
		w.abort()
		assert.DeepEqual(t, got, want)
	}
	w := startWalk(dirTree(dir), nil, 1)
	stopped := errors.New("stopped")
	n := 0
	err := w.each(nil, func(string, fs.FileInfo, string) error {
		if n++; n == 300 {
			return stopped
		}
		return nil
	})
	assert.Equal(t, err, stopped)
	w.abort() // again: nothing waits
}
