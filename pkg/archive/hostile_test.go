package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// pluginArchive lays out a docker-dtr archive by hand, without the writer's
// checks, with a manifest that matches it: only what a test breaks on
// purpose is wrong. docs are a table's documents, by directory.
func pluginArchive(t *testing.T, defs Definitions, docs map[string][]string, edit func(*Manifest)) []byte {
	t.Helper()
	const v = "2.9.4"
	defs.Format, defs.FormatVersion = FormatName, FormatVersion
	defsJSON, err := json.Marshal(defs)
	assert.NilError(t, err)
	es := []entry{
		{tar.Header{Name: VersionDir(v), Typeflag: tar.TypeDir, Mode: DirMode}, nil},
		{tar.Header{Name: PluginDir, Typeflag: tar.TypeDir, Mode: DirMode}, nil},
		{tar.Header{Name: DefinitionsName, Typeflag: tar.TypeReg, Mode: FileMode}, defsJSON},
		{tar.Header{Name: RethinkDir(v), Typeflag: tar.TypeDir, Mode: DirMode}, nil},
	}
	m := Manifest{Format: FormatName, FormatVersion: FormatVersion, Tool: "test", DTRVersion: v,
		Started: testStarted, Finished: testStarted, Tables: []TableStats{}, Excluded: []Exclusion{}}
	for _, tb := range defs.Tables {
		st := TableStats{DB: tb.DB, Table: tb.Name, Dir: tb.Dir}
		es = append(es, entry{tar.Header{Name: TableDirName(v, tb.Dir), Typeflag: tar.TypeDir, Mode: DirMode}, nil})
		for i, d := range docs[tb.Dir] {
			es = append(es, entry{tar.Header{Name: DocumentName(v, tb.Dir, int64(i)), Typeflag: tar.TypeReg, Mode: FileMode}, []byte(d)})
			st.Rows++
			st.Bytes += int64(len(d))
		}
		m.Tables = append(m.Tables, st)
	}
	m.Entries = int64(len(es))
	if edit != nil {
		edit(&m)
	}
	head, err := json.Marshal(m)
	assert.NilError(t, err)
	body := string(head) + "\n"
	for _, e := range es {
		sum := sha256.Sum256(e.data)
		line, _ := json.Marshal(Entry{Name: e.hdr.Name, Size: int64(len(e.data)), SHA256: hex.EncodeToString(sum[:])})
		body += string(line) + "\n"
	}
	sum := sha256.Sum256([]byte(body))
	body += `{"manifestSHA256":"` + hex.EncodeToString(sum[:]) + "\"}\n"
	es = append(es, entry{tar.Header{Name: ManifestName, Typeflag: tar.TypeReg, Mode: FileMode}, []byte(body)})
	return buildTar(t, es)
}

func table(db, name string) Table {
	return Table{DB: db, Name: name, Dir: name, PrimaryKey: "id", WriteHook: json.RawMessage("null"), Indexes: []Index{}}
}

func TestPluginArchiveHelperVerifies(t *testing.T) {
	b := pluginArchive(t, Definitions{Tables: []Table{table("dtr2", "tags")}}, map[string][]string{"tags": {`{"id":1}`}}, nil)
	rep := verifyBytes(t, b)
	assert.Assert(t, rep.OK(), problems(rep))
	assert.Assert(t, rep.Verified)
}

// Names RethinkDB would refuse, and its system database, are refused when
// the archive is verified: a restore stops before it changes anything.
func TestVerifyRefusesTableNamesRethinkDBRefuses(t *testing.T) {
	long := strings.Repeat("t", 128)
	for name, tc := range map[string]struct {
		tables []Table
		want   string
	}{
		"dot in a table name":      {[]Table{table("dtr2", "tags.v2")}, `invalid table name "tags.v2" in database dtr2`},
		"space in a database name": {[]Table{table("dtr 2", "tags")}, `invalid database name "dtr 2"`},
		"slash in a table name":    {[]Table{{DB: "dtr2", Name: "a/b", Dir: "a/b", PrimaryKey: "id"}}, `invalid table name "a/b"`},
		"non-ASCII table name":     {[]Table{table("dtr2", "täble")}, `invalid table name "täble"`},
		"empty table name":         {[]Table{{DB: "dtr2", Name: "", Dir: "", PrimaryKey: "id"}}, `invalid table name ""`},
		"name over 127 bytes":      {[]Table{table("dtr2", long)}, "invalid table name"},
		"system database":          {[]Table{table("rethinkdb", "users")}, "table rethinkdb.users is in RethinkDB's system database"},
		"a table defined twice":    {[]Table{table("dtr2", "tags"), {DB: "dtr2", Name: "tags", Dir: "dtr2.tags", PrimaryKey: "id"}}, "table dtr2.tags defined twice"},
		"an index defined twice": {[]Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", Indexes: []Index{
			{Name: "ix", Function: testIndexFn},
			{Name: "ix", Function: testIndexFn}}}}, `index "ix" defined twice`},
		"index named as the primary key": {[]Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", Indexes: []Index{
			{Name: "id", Function: testIndexFn}}}}, `index "id" has the primary key's name`},
		"index function not base64": {[]Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", Indexes: []Index{
			{Name: "ix", Function: json.RawMessage(`{"$reql_type$":"BINARY","data":"%%%"}`)}}}}, `index "ix" has no function binary`},
		"write hook without function": {[]Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", WriteHook: json.RawMessage(`{"query":"x"}`)}},
			"write hook has no function binary"},
	} {
		t.Run(name, func(t *testing.T) {
			docs := map[string][]string{}
			for _, tb := range tc.tables {
				docs[tb.Dir] = []string{`{"id":"x"}`}
			}
			rep := verifyBytes(t, pluginArchive(t, Definitions{Tables: tc.tables}, docs, nil))
			assert.Assert(t, !rep.OK() && !rep.Verified)
			assert.Assert(t, is.Contains(problems(rep), tc.want))
		})
	}

	// The manifest's own list is checked too, whatever the definitions say.
	rep := verifyBytes(t, pluginArchive(t, Definitions{Tables: []Table{table("dtr2", "tags")}}, nil, func(m *Manifest) {
		m.Tables[0].DB = SystemDB
	}))
	assert.Assert(t, is.Contains(problems(rep), "docker-dtr/manifest.jsonl: table rethinkdb.tags is in RethinkDB's system database"))
	rep = verifyBytes(t, pluginArchive(t, Definitions{Tables: []Table{table("dtr2", "tags")}}, nil, func(m *Manifest) {
		m.Excluded = []Exclusion{{DB: "dtr2", Table: "../events"}}
	}))
	assert.Assert(t, is.Contains(problems(rep), `invalid excluded table "dtr2"."../events"`))

	// The writer refuses them in the first place.
	_, err := NewWriter(io.Discard, Info{DTRVersion: "2.9.4"}, Definitions{Tables: []Table{table("rethinkdb", "users")}})
	assert.ErrorContains(t, err, "system database")
	_, err = NewWriter(io.Discard, Info{DTRVersion: "2.9.4"}, Definitions{Tables: []Table{table("dtr2", "a b")}})
	assert.ErrorContains(t, err, `invalid table name "a b"`)
}

func officialTar(t *testing.T, docs ...[2]string) []byte {
	t.Helper()
	const top = "dtr-backup-v2.9.4/"
	es := []entry{
		{tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: top + "rethink/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: top + "rethink/properties/", Typeflag: tar.TypeDir, Mode: 0o700}, nil},
		{tar.Header{Name: top + "rethink/properties/0", Typeflag: tar.TypeReg, Mode: 0o600}, []byte(`{"id":"ha.json"}`)},
	}
	for _, d := range docs {
		es = append(es, entry{tar.Header{Name: top + "rethink/" + d[0], Typeflag: tar.TypeReg, Mode: 0o600}, []byte(d[1])})
	}
	return buildTar(t, es)
}

// docker/dtr backup names a directory by its table; its restore makes a
// table of that name. A name RethinkDB refuses, or one that reads as
// db.table, is refused at verify.
func TestVerifyRefusesOfficialTableDirectories(t *testing.T) {
	rep := verifyBytes(t, officialTar(t, [2]string{"tags/0", `{"id":"a"}`}))
	assert.Assert(t, rep.OK(), problems(rep))

	for dir, want := range map[string]string{
		"rethinkdb.users": `invalid table directory: invalid table name "rethinkdb.users" in database dtr2`,
		"a b":             `invalid table name "a b"`,
		"täble":           `invalid table name "täble"`,
	} {
		rep := verifyBytes(t, officialTar(t, [2]string{dir + "/0", `{"id":"a"}`}))
		assert.Assert(t, !rep.OK(), dir)
		assert.Assert(t, is.Contains(problems(rep), want), dir)
	}
}

// A docker/dtr backup has no manifest: its end-of-archive blocks are all
// that tell a whole archive from one cut after an entry.
func TestVerifyFindsAnOfficialArchiveCutAfterAnEntry(t *testing.T) {
	b := officialTar(t, [2]string{"tags/0", `{"id":"a"}`}, [2]string{"tags/1", `{"id":"b"}`})
	assert.Assert(t, verifyBytes(t, b).OK())
	cut := b[:len(b)-1024-1024] // the end blocks and tags/1 (its header and one block of content)
	rep := verifyBytes(t, cut)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, is.Contains(problems(rep), "dtr-backup-v2.9.4/rethink/tags/0: the archive ends without tar's end-of-archive blocks"))
	rep = verifyBytes(t, b[:len(b)-512])
	assert.Assert(t, is.Contains(problems(rep), "end-of-archive"))
}

// A document over RethinkDB's query size limit is refused by verify, with
// its table and number, and by the reader if it gets that far.
func TestDocumentOverTheLimit(t *testing.T) {
	big := `{"id":"big","pad":"` + strings.Repeat("x", MaxDocumentSize-len(`{"id":"big","pad":""}`)+1) + `"}`
	assert.Equal(t, len(big), MaxDocumentSize+1)
	b := pluginArchive(t, Definitions{Tables: []Table{table("dtr2", "properties"), table("dtr2", "tags")}},
		map[string][]string{"properties": {`{"id":"p"}`}, "tags": {`{"id":"a"}`, big}}, nil)
	rep := verifyBytes(t, b)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, is.Contains(problems(rep),
		"dtr-backup-v2.9.4/rethink/tags/1: document 1 of table dtr2.tags is 67108865 bytes, over the 67108864 byte (64.0 MiB) document limit"))

	rd := NewReader(bytes.NewReader(b), "dtr-backup-v2.9.4/")
	var err error
	for err == nil {
		_, _, err = rd.Next()
	}
	assert.ErrorContains(t, err, "document 1 of table directory tags is 67108865 bytes, over the 67108864 byte (64.0 MiB) document limit")

	// docker/dtr backups name the table by DTR's rules: pkg/metadata's
	// TestDocumentOverTheLimitIsRefused.

	// the writer refuses it, naming it too
	w, err := NewWriter(io.Discard, Info{DTRVersion: "2.9.4"}, Definitions{Tables: []Table{table("dtr2", "tags")}})
	assert.NilError(t, err)
	defer w.Abort()
	assert.NilError(t, w.BeginTable(table("dtr2", "tags")))
	assert.NilError(t, w.WriteDocument([]byte(`{"id":"a"}`)))
	assert.ErrorContains(t, w.WriteDocument([]byte(big)), "document 1 of table dtr2.tags is 67108865 bytes, over the 67108864 byte (64.0 MiB) document limit")

	// exactly at the limit is fine
	atLimit := big[:len(big)-3] + `"}`
	b = pluginArchive(t, Definitions{Tables: []Table{table("dtr2", "tags")}}, map[string][]string{"tags": {atLimit}}, nil)
	rep = verifyBytes(t, b)
	assert.Assert(t, rep.OK(), problems(rep))
}

// A header claiming a 10 GiB document costs nothing: not read, not allocated.
func TestHugeClaimsAllocateNothing(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4/", Typeflag: tar.TypeDir, Mode: 0o700}))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4/rethink/tags/0", Typeflag: tar.TypeReg, Mode: 0o600, Size: 10 << 30}))
	tw.Write([]byte(`{"id":"x"}`))
	b := buf.Bytes() // cut: no more content, no end blocks

	alloc := allocated(func() {
		rep := verifyBytes(t, b)
		assert.Assert(t, is.Contains(problems(rep), "document 0 of table dtr2.tags is 10737418240 bytes"))
	})
	assert.Assert(t, alloc < 32<<20, "verify allocated %d bytes", alloc)

	// The reader, given a document under the limit that the archive does
	// not hold, allocates for what arrives, not for the claim.
	buf.Reset()
	tw = tar.NewWriter(&buf)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "dtr-backup-v2.9.4/rethink/tags/0", Typeflag: tar.TypeReg, Mode: 0o600, Size: MaxDocumentSize}))
	tw.Write([]byte(`{"id":"x"}`))
	alloc = allocated(func() {
		_, _, err := NewReader(bytes.NewReader(buf.Bytes()), "dtr-backup-v2.9.4/").Next()
		assert.Assert(t, errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
	})
	assert.Assert(t, alloc < 8<<20, "the reader allocated %d bytes", alloc)
}

func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Counts a manifest or definitions can claim are bounded before anything
// grows with them.
func TestVerifyBoundsCounts(t *testing.T) {
	one := Definitions{Tables: []Table{table("dtr2", "tags")}}
	for name, tc := range map[string]struct {
		edit func(*Manifest)
		want string
	}{
		"too many tables": {func(m *Manifest) {
			for i := range MaxTables {
				m.Tables = append(m.Tables, TableStats{DB: "dtr2", Table: fmt.Sprintf("t%d", i), Dir: fmt.Sprintf("t%d", i)})
			}
		}, "lists 4097 tables and 0 exclusions, more than the 4096 an archive may hold"},
		"rows that overflow": {func(m *Manifest) {
			m.Tables = append(m.Tables, TableStats{DB: "a", Table: "b", Dir: "b", Rows: 1 << 62}, TableStats{DB: "a", Table: "c", Dir: "c", Rows: 1 << 62})
		}, "table a.c: invalid counts"},
		"negative entries": {func(m *Manifest) { m.Entries = -1 }, "negative entry count"},
		"wrong entries":    {func(m *Manifest) { m.Entries++ }, "the manifest counts 7 entries, the archive holds 6 before it"},
	} {
		rep := verifyBytes(t, pluginArchive(t, one, map[string][]string{"tags": {`{"id":1}`}}, tc.edit))
		assert.Assert(t, !rep.OK(), name)
		assert.Assert(t, is.Contains(problems(rep), tc.want), name)
	}

	// A header of tens of thousands of empty tables is refused by count
	// before it is decoded.
	rep := verifyBytes(t, pluginArchive(t, one, nil, func(m *Manifest) {
		m.Excluded = make([]Exclusion, 70000)
	}))
	assert.Assert(t, is.Contains(problems(rep), "more than 65536 JSON values"))

	// Definitions: a few bytes per element would be a Table each.
	es := readEntries(t, pluginArchive(t, one, nil, nil))
	es[2].data = []byte(`{"format":"docker-dtr-metadata","formatVersion":1,"tables":[` + strings.Repeat("0,", 300000) + `0]}`)
	rep = verifyBytes(t, buildTar(t, es))
	assert.Assert(t, is.Contains(problems(rep), "docker-dtr/tables.json: invalid table definitions: more than 262144 JSON values"))

	// docker/dtr backups: documents of more than MaxTables directories.
	var docs [][2]string
	for i := range MaxTables + 1 {
		docs = append(docs, [2]string{fmt.Sprintf("t%d/0", i), `{"id":0}`})
	}
	rep = verifyBytes(t, officialTar(t, docs...))
	assert.Assert(t, is.Contains(problems(rep), "documents of more than 4096 tables"))
	assert.Assert(t, len(rep.Tables) <= MaxTables)
}

func TestVerifyRefusesSparseEntries(t *testing.T) {
	b := officialTar(t, [2]string{"tags/0", `{"id":"a"}`})
	// an old GNU sparse header: the same entry with type 'S' and GNU magic
	es := readEntries(t, b)
	raw := buildTar(t, es)
	off := bytes.Index(raw, []byte("dtr-backup-v2.9.4/rethink/tags/0"))
	assert.Assert(t, off >= 0 && off%512 == 0)
	raw[off+156] = tar.TypeGNUSparse
	copy(raw[off+257:], "ustar  \x00")
	fixChecksum(raw[off : off+512])
	rep := verifyBytes(t, raw)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, is.Contains(problems(rep), "sparse file"), problems(rep))
}

// fixChecksum recomputes a tar header block's checksum.
func fixChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// Names can be a MiB long in a tar; a problem keeps only the start.
func TestProblemsAreShortened(t *testing.T) {
	long := "dtr-backup-v2.9.4/rethink/" + strings.Repeat("é", 1<<18) + "/0"
	b := officialTar(t, [2]string{strings.TrimPrefix(long, "dtr-backup-v2.9.4/rethink/"), `{}`})
	rep := verifyBytes(t, b)
	assert.Assert(t, !rep.OK())
	for _, p := range rep.Problems {
		assert.Assert(t, len(p.Entry) < 2*maxProblemText && len(p.Message) < 2*maxProblemText, "%d, %d", len(p.Entry), len(p.Message))
	}
	assert.Assert(t, is.Contains(problems(rep), fmt.Sprintf("… (%d bytes)", len(long))))
}
