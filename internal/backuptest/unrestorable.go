package backuptest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
)

// Unrestorable is a metadata backup whose checksums and manifest are all
// consistent, but that RethinkDB would refuse to load, or would load as
// other data than it holds. Verify must report Want, in one problem.
type Unrestorable struct {
	Name string // what is wrong with it
	Want string // part of verify's problem line
	Data []byte
}

// IndexFunction and WriteHook are function binaries as RethinkDB 2.4's
// index_status() and get_write_hook() return them (indexCreate('repository'),
// and a hook that returns its new value).
var (
	IndexFunction = json.RawMessage(`{"$reql_type$":"BINARY","data":"JHJlcWxfaW5kZXhfZnVuY3Rpb24kCQcHBwAAAAAAAAHt/////////y8AAABbMzEsW1sxMCxbWzEsLTE5LDBdXSwwXSxbMSwicmVwb3NpdG9yeSIsMF1dLDBdAAAAAAAAAA=="}`)
	WriteHook     = json.RawMessage(`{"function":{"$reql_type$":"BINARY","data":"JHJlcWxfd3JpdGVfaG9va19mdW5jdGlvbiQAAAAAAAADAgAAAAAAAAADAAAAAAAAAAQAAAAAAAAA\r\nEwAAAFsxMCxbWzEsNCwxMV1dLDEwXQAKAAAA"},"query":"setWriteHook(function(var2, var3, var4) { return var4; })"}`)
)

// Version is the DTR version of the backups this package writes.
const Version = "2.9.4"

// an archive entry, laid out by hand
type rawEntry struct {
	name string
	dir  bool
	data []byte
}

// restorable is the backup the corpus breaks: dtr2.properties and
// dtr2.tags, with an index and a write hook, a TIME and a BINARY.
func restorable() ([]archive.Table, map[string][]string) {
	tables := []archive.Table{
		{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null"), Indexes: []archive.Index{}},
		{DB: "dtr2", Name: "tags", PrimaryKey: "id", WriteHook: WriteHook,
			Indexes: []archive.Index{{Name: "repository", Function: IndexFunction}}},
	}
	archive.AssignDirs(tables)
	docs := map[string][]string{
		"properties": {`{"id":"ha.json","value":"{\"replicaCount\":3}"}`},
		"tags": {
			`{"id":"repo:v1","repository":"repo","created_at":{"$reql_type$":"TIME","epoch_time":1709205255.25,"timezone":"+02:00"},"signature":{"$reql_type$":"BINARY","data":"AAEC/v8DAQ=="}}`,
			`{"id":"repo:v2","repository":"repo","created_at":{"$reql_type$":"TIME","epoch_time":1709205256,"timezone":"+00:00"}}`,
		},
	}
	return tables, docs
}

// layout lays tables and docs out as the writer does.
func layout(tables []archive.Table, docs map[string][]string) []rawEntry {
	defs, _ := json.MarshalIndent(archive.Definitions{Format: archive.FormatName, FormatVersion: archive.FormatVersion, Tables: tables}, "", "  ")
	es := []rawEntry{
		{name: archive.VersionDir(Version), dir: true},
		{name: archive.PluginDir, dir: true},
		{name: archive.DefinitionsName, data: append(defs, '\n')},
		{name: archive.RethinkDir(Version), dir: true},
	}
	for _, t := range tables {
		es = append(es, rawEntry{name: archive.TableDirName(Version, t.Dir), dir: true})
		for i, d := range docs[t.Dir] {
			es = append(es, rawEntry{name: archive.DocumentName(Version, t.Dir, int64(i)), data: []byte(d)})
		}
	}
	return es
}

// seal writes es as a tar with a manifest that lists every entry as it is,
// and counts each table's documents as they are: only what the caller
// broke on purpose is wrong.
func seal(t testing.TB, tables []archive.Table, es []rawEntry) []byte {
	t.Helper()
	started := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	m := archive.Manifest{Format: archive.FormatName, FormatVersion: archive.FormatVersion, Tool: "docker-dtr test", DTRVersion: Version,
		ReplicaID: "0123456789ab", Started: started, Finished: started.Add(time.Second), Tables: []archive.TableStats{}, Excluded: []archive.Exclusion{}, Entries: int64(len(es))}
	for _, tb := range tables {
		st := archive.TableStats{DB: tb.DB, Table: tb.Name, Dir: tb.Dir}
		prefix := archive.TableDirName(Version, tb.Dir)
		for _, e := range es {
			if !e.dir && len(e.name) > len(prefix) && e.name[:len(prefix)] == prefix {
				st.Rows++
				st.Bytes += int64(len(e.data))
			}
		}
		m.Tables = append(m.Tables, st)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var body bytes.Buffer
	head, err := json.Marshal(m)
	assert.NilError(t, err)
	body.Write(append(head, '\n'))
	for _, e := range es {
		hdr := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: archive.FileMode, Size: int64(len(e.data)), ModTime: started}
		if e.dir {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, archive.DirMode
		}
		assert.NilError(t, tw.WriteHeader(hdr))
		_, err := tw.Write(e.data)
		assert.NilError(t, err)
		sum := sha256.Sum256(e.data)
		line, _ := json.Marshal(archive.Entry{Name: e.name, Size: int64(len(e.data)), SHA256: hex.EncodeToString(sum[:])})
		body.Write(append(line, '\n'))
	}
	sum := sha256.Sum256(body.Bytes())
	body.WriteString(`{"manifestSHA256":"` + hex.EncodeToString(sum[:]) + "\"}\n")
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: archive.ManifestName, Typeflag: tar.TypeReg, Mode: archive.FileMode, Size: int64(body.Len()), ModTime: started}))
	_, err = tw.Write(body.Bytes())
	assert.NilError(t, err)
	assert.NilError(t, tw.Close())
	return buf.Bytes()
}

// Restorable is the backup UnrestorableBackups breaks, whole: it verifies
// and restores.
func Restorable(t testing.TB) []byte {
	tables, docs := restorable()
	return seal(t, tables, layout(tables, docs))
}

// UnrestorableBackups is the corpus of backups that pass every checksum
// but cannot be restored as they are.
func UnrestorableBackups(t testing.TB) []Unrestorable {
	t.Helper()
	var out []Unrestorable
	add := func(name, want string, tables []archive.Table, es []rawEntry) {
		out = append(out, Unrestorable{Name: name, Want: want, Data: seal(t, tables, es)})
	}
	// a document of tags replaced
	withDoc := func(name, want, doc string) {
		tables, docs := restorable()
		docs["tags"] = append([]string{}, docs["tags"]...)
		docs["tags"][1] = doc
		add(name, want, tables, layout(tables, docs))
	}
	withDoc("duplicate primary key", "has the primary key of document 0", `{"id":"repo:v1","repository":"other"}`)
	withDoc("a document without its primary key", `no primary key field "id"`, `{"repository":"repo","name":"v2"}`)
	withDoc("a null primary key", "is null", `{"id":null}`)
	withDoc("a primary key over 127 bytes", "over RethinkDB's primary key limit", `{"id":"`+string(bytes.Repeat([]byte("k"), 128))+`"}`)
	withDoc("an array primary key over 128 bytes", "an array RethinkDB stores as a key of 129 bytes", `{"id":["`+string(bytes.Repeat([]byte("k"), 60))+`","`+string(bytes.Repeat([]byte("k"), 64))+`"]}`)
	withDoc("a TIME without timezone", "malformed TIME pseudo-type", `{"id":"repo:v2","created_at":{"$reql_type$":"TIME","epoch_time":1709205256}}`)
	withDoc("a TIME with an invalid timezone", "malformed TIME pseudo-type", `{"id":"repo:v2","created_at":{"$reql_type$":"TIME","epoch_time":1709205256,"timezone":"+00:60"}}`)
	withDoc("a TIME whose epoch_time is a string", "malformed TIME pseudo-type", `{"id":"repo:v2","created_at":{"$reql_type$":"TIME","epoch_time":"1709205256","timezone":"+00:00"}}`)
	withDoc("a BINARY that is not base64", "malformed BINARY pseudo-type", `{"id":"repo:v2","sig":{"$reql_type$":"BINARY","data":"!!!!"}}`)
	withDoc("a GEOMETRY without coordinates", "malformed GEOMETRY pseudo-type", `{"id":"repo:v2","where":[{"$reql_type$":"GEOMETRY","type":"Point"}]}`)
	withDoc("a field named twice", `field "name" appears twice in one object`, `{"id":"repo:v2","tag":{"name":"v2","name":"v3"}}`)
	withDoc("a TIME 25 hours ahead", "malformed TIME pseudo-type", `{"id":"repo:v2","created_at":{"$reql_type$":"TIME","epoch_time":1709205256,"timezone":"+25:00"}}`)
	withDoc("an unknown pseudo-type", "unknown pseudo-type", `{"id":"repo:v2","x":{"$reql_type$":"GROUPED_DATA","data":[]}}`)

	{ // a document entry twice, listed twice
		tables, docs := restorable()
		es := layout(tables, docs)
		es = append(es, es[len(es)-1])
		add("a duplicate tar entry", "a duplicate entry", tables, es)
	}
	{ // a table's directory twice, listed twice
		tables, docs := restorable()
		es := layout(tables, docs)
		es = append(es[:5], append([]rawEntry{es[4]}, es[5:]...)...)
		add("a directory twice", "this directory appears twice", tables, es)
	}
	{ // the definitions twice: a restore would take the second
		tables, docs := restorable()
		es := layout(tables, docs)
		other, _ := json.Marshal(archive.Definitions{Format: archive.FormatName, FormatVersion: archive.FormatVersion, Tables: []archive.Table{tables[1], tables[0]}})
		es = append(es[:3], append([]rawEntry{{name: archive.DefinitionsName, data: other}}, es[3:]...)...)
		add("the table definitions twice", "the table definitions appear twice", tables, es)
	}
	{ // a table moved into a database that is not DTR's
		tables, docs := restorable()
		tables[0].DB = "dtr3"
		add("a table outside DTR's databases", `in database "dtr3", which is not one of DTR's`, tables, layout(tables, docs))
	}
	garbage := func(prefix string) json.RawMessage {
		data := base64.StdEncoding.EncodeToString([]byte(prefix + "\x00\x00garbage"))
		return json.RawMessage(`{"$reql_type$":"BINARY","data":"` + data + `"}`)
	}
	{
		tables, docs := restorable()
		tables[1].Indexes[0].Function = garbage("$reql_index_function$\t\a\a\a")
		add("a garbage index function", `the function of index "repository" cannot be recreated`, tables, layout(tables, docs))
	}
	{
		tables, docs := restorable()
		tables[1].Indexes[0].Function = json.RawMessage(`{"$reql_type$":"BINARY","data":"AAEC"}`)
		add("an index function without RethinkDB's header", `the function of index "repository" cannot be recreated`, tables, layout(tables, docs))
	}
	{
		tables, docs := restorable()
		tables[1].WriteHook = json.RawMessage(`{"function":` + string(garbage("$reql_write_hook_function$")) + `,"query":"x"}`)
		add("a garbage write hook", "the write hook cannot be set again", tables, layout(tables, docs))
	}
	return out
}
