package archive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker-dtr/docker-dtr/internal/tartest"
)

// seedArchive writes a docker-dtr archive with the package's own writer.
func seedArchive(tb testing.TB, tables []Table, docs int, excluded []Exclusion) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Info{Tool: "fuzz", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: testStarted}, Definitions{Tables: tables})
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range tables {
		if err := w.BeginTable(t); err != nil {
			tb.Fatal(err)
		}
		for i := range docs {
			doc := fmt.Sprintf(`{%q:"%s-%d","n":%d,"when":{"$reql_type$":"TIME","epoch_time":1.7e9,"timezone":"+00:00"}}`, t.PrimaryKey, t.Name, i, i)
			if err := w.WriteDocument([]byte(doc)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if _, err := w.Finish(excluded, testStarted.Add(time.Second)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// officialArchive is laid out as docker/dtr backup writes it.
func officialArchive(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, typ byte, data string) {
		mode := int64(0o600)
		if typ == tar.TypeDir {
			mode = 0o700
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: int64(len(data)), ModTime: testStarted}); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			tb.Fatal(err)
		}
	}
	const top = "dtr-backup-v2.9.4-online/"
	add(top, tar.TypeDir, "")
	add(top+"rethink/", tar.TypeDir, "")
	add(top+"rethink/properties/", tar.TypeDir, "")
	add(top+"rethink/properties/0", tar.TypeReg, `{"id":"ha.json","value":"{}"}`)
	add(top+"rethink/private_keys/", tar.TypeDir, "")
	add(top+"rethink/private_keys/0", tar.TypeReg, `{"key_id":"k1","created_at":"2020-01-01T00:00:00Z"}`)
	add(top+"rethink/private_keys/1", tar.TypeReg, `{"key_id":"k2"}`)
	add(top+"rethink/tags/", tar.TypeDir, "")
	add(top+"rethink/tags/0", tar.TypeReg, `{"id":"repo:v1","digest":"sha256:00"}`)
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func fuzzSeeds(tb testing.TB) [][]byte {
	fn := testIndexFn
	hook := testHook
	withIndexes := []Table{
		{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")},
		{DB: "dtr2", Name: "tags", PrimaryKey: "id", WriteHook: hook,
			Indexes: []Index{{Name: "repository", Function: fn}, {Name: "digests", Function: fn, Multi: true}}},
		{DB: "jobrunner", Name: "tags", PrimaryKey: "pk", WriteHook: json.RawMessage("null")},
	}
	AssignDirs(withIndexes)
	plugin := seedArchive(tb, sampleTables(), 2, []Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}})
	official := officialArchive(tb)
	seeds := [][]byte{
		plugin,
		seedArchive(tb, withIndexes, 3, nil),
		seedArchive(tb, nil, 0, nil), // no tables at all
		official,
	}
	// Mutations, at fixed places: cut short, a flipped bit, a document
	// changed in place.
	for _, b := range [][]byte{plugin, official} {
		for _, cut := range []int{512, len(b) / 2, len(b) - 1024 - 1, len(b) - 1024} {
			seeds = append(seeds, bytes.Clone(b[:cut]))
		}
		for _, at := range []int{100, 700, len(b) / 3, len(b) - 1536} {
			c := bytes.Clone(b)
			c[at] ^= 0x10
			seeds = append(seeds, c)
		}
	}
	c := bytes.Clone(plugin)
	i := bytes.Index(c, []byte(`"properties-0"`))
	c[i+1] = 'P'
	seeds = append(seeds, c)
	// What restore needs: keys, pseudo-types; and an entry twice.
	for _, docs := range [][]string{
		{`{"id":"a"}`, `{"id":"a"}`},
		{`{"id":1}`, `{"id":1.0}`},
		{`{"id":"a"}`, `{"name":"b"}`},
		{`{"id":"a","t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`, `{"id":"b","t":{"\u0024reql_type$":"TIME","epoch_time":1}}`},
		{`{"id":"a","b":[{"$reql_type$":"BINARY","data":"AAEC"}]}`, `{"id":{"$reql_type$":"TIME","epoch_time":1,"timezone":"Z"}}`},
	} {
		seeds = append(seeds, docsArchive(tb, docs))
	}
	return seeds
}

// docsArchive is an archive of dtr2.tags holding docs, as the writer
// writes whatever documents it is given.
func docsArchive(tb testing.TB, docs []string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tables := []Table{{DB: "dtr2", Name: "tags", Dir: "tags", PrimaryKey: "id", WriteHook: json.RawMessage("null")}}
	w, err := NewWriter(&buf, Info{Tool: "fuzz", DTRVersion: "2.9.4", Started: time.Unix(1700000000, 0)}, Definitions{Tables: tables})
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.BeginTable(tables[0]); err != nil {
		tb.Fatal(err)
	}
	for _, d := range docs {
		if err := w.WriteDocument([]byte(d)); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := w.Finish(nil, time.Unix(1700000001, 0)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzVerify reads arbitrary bytes as a metadata archive with Inspect,
// Verify and the restore's Reader. None may panic or hang, memory must not
// grow beyond what the input holds (a header's claim of 10 GiB is only a
// claim), and an archive Verify passes must be what restore reads: every
// document read without error, and the counts of the report.
func FuzzVerify(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	// one file for every input: a fuzzing process runs one input at a time
	p := filepath.Join(f.TempDir(), "backup.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, p, data)
		// The same with every tar header's checksum put right, so that a
		// change to a header's fields reaches more than the tar reader.
		if fixed := tartest.FixChecksums(data); fixed != nil {
			check(t, p, fixed)
		}
	})
}

// check runs one input through everything that reads an archive.
func check(t *testing.T, p string, data []byte) {
	file := tartest.Open(t, p, data)

	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	ins, err := Inspect(file)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	rep, err := Verify(file)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	type counts struct{ rows, bytes int64 }
	read := map[string]*counts{}
	var order []string
	rd := NewReader(file, rep.VersionDir)
	var readErr error
	keys := map[string]bool{} // exact, for the small inputs of a fuzzer
	for {
		dir, doc, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		c := read[dir]
		if c == nil {
			c = &counts{}
			read[dir] = c
			order = append(order, dir)
		}
		c.rows++
		c.bytes += int64(len(doc))
		if rep.OK() && checkDocument(doc) != nil {
			t.Fatalf("verified, but %s holds a document that is not a JSON object: %q", dir, doc)
		}
		if rep.OK() {
			restorable(t, rep, keys, dir, doc)
		}
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20+64*uint64(len(data)) {
		t.Fatalf("%d bytes allocated for %d bytes of input", alloc, len(data))
	}

	if len(rep.Problems) > maxProblems || len(ins.Problems) > maxProblems {
		t.Fatalf("more than %d problems kept", maxProblems)
	}
	for _, p := range rep.Problems {
		if len(p.Entry) > 2*maxProblemText || len(p.Message) > 2*maxProblemText {
			t.Fatalf("a problem of %d+%d bytes", len(p.Entry), len(p.Message))
		}
	}
	if !rep.OK() {
		if rep.Verified {
			t.Fatalf("verified with problems: %v", rep.Problems)
		}
		return
	}

	// Verify passed: restore must read what the report says.
	if readErr != nil {
		t.Fatalf("verified, but the reader fails: %v", readErr)
	}
	if rep.Kind != KindPlugin && rep.Kind != KindOfficial {
		t.Fatalf("verified an archive of kind %q", rep.Kind)
	}
	if rep.Verified != (rep.Kind == KindPlugin) {
		t.Fatalf("kind %s, verified %v", rep.Kind, rep.Verified)
	}
	if !ins.OK() || ins.Kind != rep.Kind || ins.Rows != rep.Rows || ins.Entries != rep.Entries {
		t.Fatalf("inspect and verify disagree: %+v, %+v", ins, rep)
	}
	if len(read) > len(rep.Tables) {
		t.Fatalf("read documents of %d tables, the report lists %d", len(read), len(rep.Tables))
	}
	var rows, bytes int64
	for _, st := range rep.Tables {
		c := read[st.Dir]
		if c == nil {
			c = &counts{}
		}
		if c.rows != st.Rows || c.bytes != st.Bytes {
			t.Fatalf("table %s: read %d documents (%d bytes), the report says %d (%d bytes)", st.Dir, c.rows, c.bytes, st.Rows, st.Bytes)
		}
		tb, known := rep.Table(st.Dir)
		if rep.Kind == KindPlugin && !known {
			t.Fatalf("table %s has no definition", st.Dir)
		}
		if err := CheckTable(tb.DB, tb.Name); err != nil {
			t.Fatalf("verified an archive whose table a restore must not create: %v", err)
		}
		if !IsDTRDatabase(tb.DB) {
			t.Fatalf("verified an archive with table %s outside DTR's databases", tb.FullName())
		}
		rows += st.Rows
		bytes += st.Bytes
	}
	if rows != rep.Rows || bytes != rep.Bytes {
		t.Fatalf("the report's totals %d/%d are not its tables' %d/%d", rep.Rows, rep.Bytes, rows, bytes)
	}
	if rep.Kind == KindPlugin {
		if rep.Definitions == nil || len(rep.Definitions.Tables) != len(rep.Tables) {
			t.Fatalf("verified without matching definitions")
		}
		if n := countEntries(data); n != rep.Entries {
			t.Fatalf("the report counts %d entries, the archive holds %d", rep.Entries, n)
		}
	}
	// read as a stream, as an encrypted backup is, the same
	compareStream(t, file, data, rep)
}

// countEntries counts a tar's entries with archive/tar alone.
func countEntries(data []byte) int64 {
	tr := tar.NewReader(bytes.NewReader(data))
	var n int64
	for {
		if _, err := tr.Next(); err != nil {
			return n
		}
		n++
	}
}

// restorable holds a document of a verified archive to what restore needs,
// checked here with encoding/json alone: its table's primary key is there,
// is one RethinkDB takes, and no other document of the table has it; every
// pseudo-type is one RethinkDB reads.
func restorable(t *testing.T, rep *Report, keys map[string]bool, dir string, doc []byte) {
	t.Helper()
	tb, _ := rep.Table(dir)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("verified, but %s holds %q: %v", dir, doc, err)
	}
	if utf8.Valid(doc) && repeatsAName(doc) {
		t.Fatalf("verified a document of %s that names a field twice: %q", dir, doc)
	}
	raw, ok := m[tb.PrimaryKey]
	if !ok {
		t.Fatalf("verified, but a document of %s has no primary key %q: %q", dir, tb.PrimaryKey, doc)
	}
	var key any
	if err := json.Unmarshal(raw, &key); err != nil {
		t.Fatal(err)
	}
	switch k := key.(type) {
	case nil:
		t.Fatalf("verified a null primary key in %s", dir)
	case string:
		if len(k) > maxKeyBytes || strings.IndexByte(k, 0) >= 0 {
			t.Fatalf("verified the primary key %q in %s", k, dir)
		}
	case map[string]any:
		if _, pseudo := k[reqlTypeField]; !pseudo {
			t.Fatalf("verified an object primary key in %s", dir)
		}
	}
	canon, _ := json.Marshal(canonicalKey(key))
	id := dir + "\x00" + string(canon)
	if keys[id] {
		t.Fatalf("verified a duplicate primary key %s in %s", raw, dir)
	}
	keys[id] = true
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	if err := refPseudo(v); err != nil {
		t.Fatalf("verified a document of %s with %v: %q", dir, err, doc)
	}
}

// refPseudo finds every pseudo-type of a decoded document, with
// encoding/json's decoder rather than verify's scanner, and checks it.
func refPseudo(v any) error {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			if err := refPseudo(e); err != nil {
				return err
			}
		}
	case map[string]any:
		if _, ok := t[reqlTypeField]; ok {
			b, _ := json.Marshal(t)
			if err := checkPseudo(b); err != nil {
				return err
			}
		}
		for _, e := range t {
			if err := refPseudo(e); err != nil {
				return err
			}
		}
	}
	return nil
}
