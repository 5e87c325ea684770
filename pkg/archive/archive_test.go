package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

var testStarted = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

func sampleTables() []Table {
	fn := testIndexFn
	tables := []Table{
		{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")},
		{DB: "dtr2", Name: "tags", PrimaryKey: "id", WriteHook: json.RawMessage("null"),
			Indexes: []Index{{Name: "repository", Function: fn}, {Name: "digests", Function: fn, Multi: true}}},
		{DB: "notaryserver", Name: "tuf_files", PrimaryKey: "gun_role_version", WriteHook: json.RawMessage("null")},
	}
	AssignDirs(tables)
	return tables
}

// writeSample writes an archive of the sample tables with n documents each.
func writeSample(t *testing.T, n int) []byte {
	t.Helper()
	return writeSampleWith(t, n, func(w io.Writer, info Info, defs Definitions) (sampleWriter, error) {
		return NewWriter(w, info, defs)
	})
}

// sampleWriter is a Writer or a StreamWriter.
type sampleWriter interface {
	BeginTable(Table) error
	WriteDocument([]byte) error
	Finish([]Exclusion, time.Time) (*Manifest, error)
}

// writeSampleWith is writeSample through the writer that open makes.
func writeSampleWith(t *testing.T, n int, open func(io.Writer, Info, Definitions) (sampleWriter, error)) []byte {
	t.Helper()
	var buf bytes.Buffer
	tables := sampleTables()
	w, err := open(&buf, Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: testStarted}, Definitions{Tables: tables})
	assert.NilError(t, err)
	for _, tb := range tables {
		assert.NilError(t, w.BeginTable(tb))
		for i := range n {
			doc := fmt.Sprintf(`{%q:"%s-%d","when":{"$reql_type$":"TIME","epoch_time":1.7e9,"timezone":"+00:00"},"tags":["a","b"]}`, tb.PrimaryKey, tb.Name, i)
			assert.NilError(t, w.WriteDocument([]byte(doc)))
		}
	}
	_, err = w.Finish([]Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}}, testStarted.Add(time.Second))
	assert.NilError(t, err)
	return buf.Bytes()
}

func tempFile(t *testing.T, b []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.tar")
	assert.NilError(t, os.WriteFile(p, b, 0o600))
	f, err := os.Open(p)
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func verifyBytes(t *testing.T, b []byte) *Report {
	t.Helper()
	rep, err := Verify(tempFile(t, b))
	assert.NilError(t, err)
	return rep
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func readEntries(t *testing.T, b []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []entry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		assert.NilError(t, err)
		data, err := io.ReadAll(tr)
		assert.NilError(t, err)
		out = append(out, entry{*hdr, data})
	}
}

func buildTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := e.hdr
		hdr.Size = int64(len(e.data))
		assert.NilError(t, tw.WriteHeader(&hdr))
		_, err := tw.Write(e.data)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

// rewriteManifest edits the manifest's lines and seals it again with a
// correct trailer, so that only the edit is wrong.
func rewriteManifest(t *testing.T, es []entry, edit func(lines []string) []string) {
	t.Helper()
	last := &es[len(es)-1]
	assert.Equal(t, last.hdr.Name, ManifestName)
	lines := strings.Split(strings.TrimSuffix(string(last.data), "\n"), "\n")
	lines = edit(lines[:len(lines)-1])
	body := strings.Join(lines, "\n") + "\n"
	sum := sha256.Sum256([]byte(body))
	last.data = []byte(body + `{"manifestSHA256":"` + hex.EncodeToString(sum[:]) + "\"}\n")
}

func problems(rep *Report) string {
	var s []string
	for _, p := range rep.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}

func TestWriteVerifyInspect(t *testing.T) {
	b := writeSample(t, 5)
	rep := verifyBytes(t, b)
	assert.Assert(t, rep.OK(), problems(rep))
	assert.Assert(t, rep.Verified)
	assert.Equal(t, rep.Kind, KindPlugin)
	assert.Equal(t, rep.DTRVersion, "2.9.4")
	assert.Equal(t, rep.ReplicaID, "0123456789ab")
	assert.Equal(t, rep.Rows, int64(15))
	assert.Equal(t, len(rep.Tables), 3)
	assert.DeepEqual(t, rep.Excluded, []Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}})
	assert.Equal(t, len(rep.Definitions.Tables[1].Indexes), 2)

	ins, err := Inspect(tempFile(t, b))
	assert.NilError(t, err)
	assert.Assert(t, ins.OK())
	assert.Assert(t, !ins.Verified && !ins.FullRead)
	assert.Equal(t, ins.Rows, rep.Rows)
	assert.Equal(t, ins.Entries, rep.Entries)
}

func TestLayoutMatchesDTR(t *testing.T) {
	es := readEntries(t, writeSample(t, 2))
	assert.Equal(t, es[0].hdr.Name, "dtr-backup-v2.9.4/")
	assert.Equal(t, es[0].hdr.Typeflag, byte(tar.TypeDir))
	var names []string
	for _, e := range es {
		names = append(names, e.hdr.Name)
		if e.hdr.Typeflag == tar.TypeDir {
			assert.Equal(t, e.hdr.Mode, int64(0o700), e.hdr.Name)
		} else {
			assert.Equal(t, e.hdr.Mode, int64(0o600), e.hdr.Name)
		}
	}
	assert.DeepEqual(t, names, []string{
		"dtr-backup-v2.9.4/", "docker-dtr/", "docker-dtr/tables.json", "dtr-backup-v2.9.4/rethink/",
		"dtr-backup-v2.9.4/rethink/properties/", "dtr-backup-v2.9.4/rethink/properties/0", "dtr-backup-v2.9.4/rethink/properties/1",
		"dtr-backup-v2.9.4/rethink/tags/", "dtr-backup-v2.9.4/rethink/tags/0", "dtr-backup-v2.9.4/rethink/tags/1",
		"dtr-backup-v2.9.4/rethink/tuf_files/", "dtr-backup-v2.9.4/rethink/tuf_files/0", "dtr-backup-v2.9.4/rethink/tuf_files/1",
		"docker-dtr/manifest.jsonl",
	})
}

func TestCollidingTableNamesGetQualifiedDirs(t *testing.T) {
	tables := []Table{{DB: "a", Name: "x"}, {DB: "b", Name: "x"}, {DB: "b", Name: "y"}}
	AssignDirs(tables)
	assert.Equal(t, tables[0].Dir, "a.x")
	assert.Equal(t, tables[1].Dir, "b.x")
	assert.Equal(t, tables[2].Dir, "y")
}

func TestReaderYieldsDocumentsInOrder(t *testing.T) {
	b := writeSample(t, 3)
	rd := NewReader(bytes.NewReader(b), "dtr-backup-v2.9.4/")
	var got []string
	for {
		dir, doc, err := rd.Next()
		if err == io.EOF {
			break
		}
		assert.NilError(t, err)
		assert.Assert(t, json.Valid(doc))
		got = append(got, dir)
	}
	assert.Equal(t, strings.Join(got, " "), "properties properties properties tags tags tags tuf_files tuf_files tuf_files")
}

func TestVerifyRejects(t *testing.T) {
	good := writeSample(t, 4)
	es := readEntries(t, good)
	docIdx := 10 // dtr-backup-v2.9.4/rethink/tags/0
	assert.Equal(t, es[docIdx].hdr.Name, "dtr-backup-v2.9.4/rethink/tags/0")

	clone := func() []entry {
		out := make([]entry, len(es))
		for i, e := range es {
			out[i] = entry{e.hdr, append([]byte(nil), e.data...)}
		}
		return out
	}

	cases := []struct {
		name string
		data func() []byte
		want []string // substrings of the problems
	}{
		{"empty file", func() []byte { return nil }, []string{"empty archive"}},
		{"not a tar", func() []byte { return bytes.Repeat([]byte("not a tar archive\n"), 100) }, []string{"not a tar archive"}},
		{"flipped byte in a document", func() []byte {
			b := append([]byte(nil), good...)
			i := bytes.Index(b, []byte(`"tags-0"`))
			b[i+1] ^= 0x01
			return b
		}, []string{"rethink/tags/0: SHA-256 does not match"}},
		{"flipped byte in the manifest", func() []byte {
			b := append([]byte(nil), good...)
			i := bytes.LastIndex(b, []byte(`"size":`))
			b[i+8] ^= 0x01
			return b
		}, []string{"docker-dtr/manifest.jsonl:"}},
		{"missing manifest", func() []byte { e := clone(); return buildTar(t, e[:len(e)-1]) }, []string{"manifest missing"}},
		{"unknown format version", func() []byte {
			e := clone()
			rewriteManifest(t, e, func(l []string) []string {
				l[0] = strings.Replace(l[0], `"formatVersion":1`, `"formatVersion":2`, 1)
				return l
			})
			return buildTar(t, e)
		}, []string{"unknown format version 2", "upgrade the plugin"}},
		{"duplicate entry", func() []byte {
			e := clone()
			e = append(e[:docIdx+1], e[docIdx:]...)
			return buildTar(t, e)
		}, []string{"rethink/tags/0: not in the manifest (a duplicate", "table dtr2.tags has 5 documents"}},
		{"missing document", func() []byte {
			e := clone()
			e = append(e[:docIdx], e[docIdx+1:]...)
			return buildTar(t, e)
		}, []string{"rethink/tags/0: missing", "table dtr2.tags has 3 documents"}},
		{"parent directory in a name", func() []byte {
			e := clone()
			e = append(e[:docIdx], append([]entry{{tar.Header{Name: "dtr-backup-v2.9.4/rethink/../../../etc/cron.d/x", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("{}")}}, e[docIdx:]...)...)
			return buildTar(t, e)
		}, []string{"unsafe name: parent directory"}},
		{"absolute name", func() []byte {
			e := clone()
			e = append(e[:docIdx], append([]entry{{tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o600}, []byte("{}")}}, e[docIdx:]...)...)
			return buildTar(t, e)
		}, []string{"/etc/passwd: unsafe name: absolute path"}},
		{"symlink", func() []byte {
			e := clone()
			e = append(e[:docIdx], append([]entry{{tar.Header{Name: "dtr-backup-v2.9.4/rethink/tags/link", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink}, nil}}, e[docIdx:]...)...)
			return buildTar(t, e)
		}, []string{"links and devices are refused"}},
		{"document not JSON", func() []byte {
			e := clone()
			e[docIdx].data = []byte(`{"id":"tags-0"} {"id":"again"}`)
			return buildTar(t, e)
		}, []string{"rethink/tags/0: not valid JSON", "rethink/tags/0: size 30, manifest says"}},
		{"2 GiB size header", func() []byte {
			b := buildTar(t, clone()[:docIdx])
			b = b[:len(b)-1024] // drop the end-of-archive blocks
			var hdrBuf bytes.Buffer
			tw := tar.NewWriter(&hdrBuf)
			assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4/rethink/tags/0", Typeflag: tar.TypeReg, Mode: 0o600, Size: 2 << 30}))
			return append(append(b, hdrBuf.Bytes()...), []byte(`{"id":"x"}`)...)
		}, []string{"document 0 of table directory \"tags\" is 2147483648 bytes, over the 67108864 byte (64.0 MiB) document limit", "truncated"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := verifyBytes(t, tc.data())
			assert.Assert(t, !rep.OK())
			assert.Assert(t, !rep.Verified)
			got := problems(rep)
			for _, w := range tc.want {
				assert.Assert(t, is.Contains(got, w))
			}
		})
	}
}

func TestVerifyDetectsTruncationAnywhere(t *testing.T) {
	good := writeSample(t, 3)
	// The manifest's last byte is the end of what matters; after it come
	// only tar padding and the end-of-archive blocks.
	end := bytes.LastIndex(good, []byte(`{"manifestSHA256"`))
	end += bytes.IndexByte(good[end:], '\n') + 1
	cuts := []int{end - 1, end - 2, end - 70}
	for cut := 0; cut < end; cut += 256 {
		cuts = append(cuts, cut)
	}
	for _, cut := range cuts {
		rep := verifyBytes(t, good[:cut])
		assert.Assert(t, !rep.OK(), "truncated at %d of %d verified", cut, len(good))
		assert.Assert(t, !rep.Verified)
	}
	// the end-of-archive blocks are not needed, the manifest is
	rep := verifyBytes(t, good[:len(good)-1024])
	assert.Assert(t, rep.OK(), problems(rep))
}

func TestOfficialBackup(t *testing.T) {
	es := []entry{
		{tar.Header{Name: "dtr-backup-v2.9.4-online/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/properties/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/properties/0", Typeflag: tar.TypeReg, Mode: 0o600}, []byte(`{"id":"ha.json","value":"{}"}`)},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/private_keys/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/private_keys/0", Typeflag: tar.TypeReg, Mode: 0o600}, []byte(`{"key_id":"k1","created_at":"2020-01-01T00:00:00Z"}`)},
		{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/private_keys/1", Typeflag: tar.TypeReg, Mode: 0o600}, []byte(`{"key_id":"k2"}`)},
	}
	rep := verifyBytes(t, buildTar(t, es))
	assert.Assert(t, rep.OK(), problems(rep))
	assert.Equal(t, rep.Kind, KindOfficial)
	assert.Assert(t, !rep.Verified, "an official backup has nothing to verify completeness against")
	assert.Equal(t, rep.DTRVersion, "2.9.4")
	assert.Equal(t, rep.VersionDir, "dtr-backup-v2.9.4-online/")
	assert.Equal(t, rep.Rows, int64(3))
	tb, known := rep.Table("private_keys")
	assert.Assert(t, known)
	assert.Equal(t, tb.DB, "notarysigner")
	assert.Equal(t, tb.PrimaryKey, "key_id")

	// a gap in the numbering is a missing document
	gap := append(append([]entry{}, es[:6]...), entry{tar.Header{Name: "dtr-backup-v2.9.4-online/rethink/private_keys/2", Typeflag: tar.TypeReg, Mode: 0o600}, []byte(`{"key_id":"k3"}`)})
	rep = verifyBytes(t, buildTar(t, gap))
	assert.Assert(t, is.Contains(problems(rep), "out of sequence"))
}
