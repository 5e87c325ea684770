// Package dtrtest seeds a RethinkDB (the real server the tests start) with a
// DTR-shaped data set and snapshots it for comparison. Test-only.
package dtrtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// keyHeader starts the seeded notarysigner private key.
const keyHeader = "-----BEGIN EC PRIVATE KEY-----"

// KeyInBackup is how the start of the seeded notarysigner private key
// appears in a backup's plaintext: base64, as RethinkDB's binary type is
// written (30 bytes, so no line break inside). A test that finds it in a
// file has found the key in clear.
var KeyInBackup = base64.StdEncoding.EncodeToString([]byte(keyHeader))

// Tables of the data set, as dtr-facts.md lists them, with their primary keys.
var Tables = []struct{ DB, Table, PrimaryKey string }{
	{"dtr2", "blobs", "id"},
	{"dtr2", "events", "id"},
	{"dtr2", "manifests", "id"},
	{"dtr2", "properties", "id"},
	{"dtr2", "repositories", "id"},
	{"dtr2", "scanned_images", "id"},
	{"dtr2", "scanned_layers", "id"},
	{"dtr2", "tags", "id"},
	{"jobrunner", "crons", "id"},
	{"notaryserver", "changefeed", "id"},
	{"notaryserver", "tuf_files", "gun_role_version"},
	{"notarysigner", "private_keys", "key_id"},
}

// Connect opens a driver session to a test's server.
func Connect(t testing.TB, opts r.ConnectOpts) *r.Session {
	t.Helper()
	s, err := r.Connect(opts)
	assert.NilError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func run(t testing.TB, s *r.Session, q r.Term) {
	t.Helper()
	_, err := q.RunWrite(s)
	assert.NilError(t, err)
}

// Seed creates the databases, tables, indexes, a write hook and rows: TIME,
// BINARY, unicode, nested values and one 1 MiB document.
func Seed(t testing.TB, s *r.Session) {
	t.Helper()
	created := map[string]bool{}
	for _, tb := range Tables {
		if !created[tb.DB] {
			run(t, s, r.DBCreate(tb.DB))
			created[tb.DB] = true
		}
		run(t, s, r.DB(tb.DB).TableCreate(tb.Table, r.TableCreateOpts{PrimaryKey: tb.PrimaryKey}))
	}
	dtr2 := r.DB("dtr2")
	run(t, s, dtr2.Table("repositories").IndexCreateFunc("namespace_name", func(row r.Term) any {
		return []any{row.Field("namespace"), row.Field("name")}
	}))
	run(t, s, dtr2.Table("tags").IndexCreate("repository"))
	run(t, s, dtr2.Table("tags").IndexCreate("digests", r.IndexCreateOpts{Multi: true}))
	run(t, s, dtr2.Table("manifests").IndexCreate("digest"))
	run(t, s, dtr2.Table("events").IndexCreate("published_at"))
	run(t, s, r.DB("notaryserver").Table("tuf_files").IndexCreate("gun"))
	run(t, s, dtr2.Table("tags").SetWriteHook(func(id, oldVal, newVal r.Term) r.Term { return newVal }))

	base := time.Date(2024, 2, 29, 13, 14, 15, 250_000_000, time.FixedZone("", 2*3600))
	insert := func(db, table string, docs []any) {
		t.Helper()
		res, err := r.DB(db).Table(table).Insert(docs).RunWrite(s)
		assert.NilError(t, err)
		assert.Equal(t, res.Errors, 0, res.FirstError)
	}
	insert("dtr2", "properties", []any{
		map[string]any{"id": "ha.json", "value": `{"replicaCount":3}`},
		map[string]any{"id": "registry.json", "value": map[string]any{"storage": map[string]any{"filesystem": map[string]any{"rootdirectory": "/storage"}}}},
	})
	var repos, tags, events []any
	for i := range 20 {
		ns := []string{"engineering", "ops", "ünïcødé-日本語"}[i%3]
		repos = append(repos, map[string]any{"id": fmt.Sprintf("repo-%02d", i), "namespace": ns, "name": fmt.Sprintf("app%d", i),
			"visibility": "private", "created_at": base.Add(time.Duration(i) * time.Hour), "scan_on_push": i%2 == 0})
		for j := range 3 {
			tags = append(tags, map[string]any{
				"id": fmt.Sprintf("repo-%02d:v%d", i, j), "repository": fmt.Sprintf("repo-%02d", i), "name": fmt.Sprintf("v%d", j),
				"digests":    []any{fmt.Sprintf("sha256:%064x", i*10+j), fmt.Sprintf("sha256:%064x", 1000+j)},
				"created_at": base.Add(time.Duration(i*3+j) * time.Minute),
				"signature":  []byte{0, 1, 2, 0xfe, 0xff, byte(i), byte(j)},
				"nested":     map[string]any{"layers": []any{[]any{1, 2.5, "three"}, map[string]any{"deep": []any{nil, true}}}, "emoji": "🐳"},
			})
		}
	}
	insert("dtr2", "repositories", repos)
	insert("dtr2", "tags", tags)
	for i := range 300 {
		events = append(events, map[string]any{"id": fmt.Sprintf("event-%04d", i), "type": "TAG_PUSH", "published_at": base.Add(time.Duration(i) * time.Second),
			"actor": "admin", "payload": map[string]any{"n": i, "f": float64(i) / 7}})
	}
	insert("dtr2", "events", events)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	insert("dtr2", "manifests", []any{
		map[string]any{"id": "manifest-big", "digest": "sha256:big", "payload": big},
		map[string]any{"id": "manifest-small", "digest": "sha256:small", "mediaType": "application/vnd.docker.distribution.manifest.v2+json"},
	})
	insert("dtr2", "blobs", []any{map[string]any{"id": "sha256:aaa", "size": 1 << 40, "pk": 9007199254740991}})
	insert("dtr2", "scanned_images", []any{map[string]any{"id": "scan-1", "vulns": []any{"CVE-2024-0001"}}})
	insert("dtr2", "scanned_layers", []any{map[string]any{"id": "layer-1", "components": []any{}}})
	insert("jobrunner", "crons", []any{map[string]any{"id": "gc", "schedule": "0 0 * * 6", "action": "onlinegc"}})
	insert("notaryserver", "changefeed", []any{map[string]any{"id": "cf-1", "gun": "dtr.example.com/engineering/app0", "created_at": base}})
	insert("notaryserver", "tuf_files", []any{
		map[string]any{"gun_role_version": "dtr.example.com/engineering/app0_targets_1", "gun": "dtr.example.com/engineering/app0", "data": []byte(`{"signed":{}}`), "created_at": base},
	})
	insert("notarysigner", "private_keys", []any{
		map[string]any{"key_id": "k1", "private": []byte(keyHeader + "\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"), "algorithm": "ecdsa", "created_at": base},
	})
}

// TableSnapshot is a table's full content and definition.
type TableSnapshot struct {
	PrimaryKey string
	Docs       map[string]any // by primary key, pseudo-types kept raw
	Indexes    []any          // index_status, raw function binaries
	WriteHook  any
}

func rawAll(t testing.TB, s *r.Session, q r.Term) []any {
	t.Helper()
	cur, err := q.Run(s, r.RunOpts{TimeFormat: "raw", BinaryFormat: "raw"})
	assert.NilError(t, err)
	defer cur.Close()
	var out []any
	for {
		b, ok := cur.NextResponse()
		if !ok {
			break
		}
		var v any
		assert.NilError(t, json.Unmarshal(b, &v))
		out = append(out, v)
	}
	assert.NilError(t, cur.Err())
	return out
}

// Snapshot reads every non-system table: documents, indexes, write hook.
func Snapshot(t testing.TB, s *r.Session) map[string]TableSnapshot {
	t.Helper()
	snap := map[string]TableSnapshot{}
	var dbs []string
	assert.NilError(t, r.DBList().ReadAll(&dbs, s))
	for _, db := range dbs {
		if db == "rethinkdb" {
			continue
		}
		var tables []string
		assert.NilError(t, r.DB(db).TableList().ReadAll(&tables, s))
		for _, table := range tables {
			tbl := r.DB(db).Table(table)
			var cfg struct {
				PrimaryKey string `rethinkdb:"primary_key"`
			}
			assert.NilError(t, tbl.Config().ReadOne(&cfg, s))
			ts := TableSnapshot{PrimaryKey: cfg.PrimaryKey, Docs: map[string]any{}}
			for _, d := range rawAll(t, s, tbl) {
				ts.Docs[fmt.Sprint(d.(map[string]any)[cfg.PrimaryKey])] = d
			}
			status := rawAll(t, s, tbl.IndexStatus())
			if len(status) == 1 {
				if list, ok := status[0].([]any); ok {
					for _, ix := range list {
						m := ix.(map[string]any)
						ts.Indexes = append(ts.Indexes, map[string]any{"index": m["index"], "function": m["function"], "multi": m["multi"], "geo": m["geo"]})
					}
				}
			}
			sort.Slice(ts.Indexes, func(i, j int) bool {
				return fmt.Sprint(ts.Indexes[i].(map[string]any)["index"]) < fmt.Sprint(ts.Indexes[j].(map[string]any)["index"])
			})
			if hook := rawAll(t, s, tbl.GetWriteHook()); len(hook) == 1 {
				ts.WriteHook = hook[0]
			}
			snap[db+"."+table] = ts
		}
	}
	return snap
}

// DropAll drops every database except the system one.
func DropAll(t testing.TB, s *r.Session) {
	t.Helper()
	var dbs []string
	assert.NilError(t, r.DBList().ReadAll(&dbs, s))
	for _, db := range dbs {
		if db != "rethinkdb" {
			run(t, s, r.DBDrop(db))
		}
	}
}
