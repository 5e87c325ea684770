package rethinktest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func setupTable(t *testing.T, sess *r.Session, db, table string) {
	t.Helper()
	mustRun(t, sess, r.DBCreate(db))
	mustRun(t, sess, r.DB(db).TableCreate(table))
}

func TestCreateShapes(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})

	res := runAtom(t, sess, r.DBCreate("app")).(map[string]any)
	assert.Equal(t, res["dbs_created"], float64(1))
	cfg := res["config_changes"].([]any)[0].(map[string]any)
	assert.Equal(t, cfg["old_val"], nil)
	assert.Equal(t, cfg["new_val"].(map[string]any)["name"], "app")

	res = runAtom(t, sess, r.DB("app").TableCreate("users", r.TableCreateOpts{PrimaryKey: "name"})).(map[string]any)
	assert.Equal(t, res["tables_created"], float64(1))
	nv := res["config_changes"].([]any)[0].(map[string]any)["new_val"].(map[string]any)
	assert.Equal(t, nv["primary_key"], "name")
	assert.Equal(t, nv["db"], "app")
	assert.Equal(t, nv["durability"], "hard")
	assert.Equal(t, nv["write_acks"], "majority")
	assert.Equal(t, nv["write_hook"], nil)
	assert.DeepEqual(t, nv["indexes"], []any{})

	res = runAtom(t, sess, r.DB("app").Table("users").IndexCreate("age")).(map[string]any)
	assert.DeepEqual(t, res, map[string]any{"created": float64(1)})
	assert.DeepEqual(t, runAll(t, sess, r.DB("app").Table("users").IndexList()), []any{"age"})
	assert.DeepEqual(t, runAtom(t, sess, r.DB("app").Table("users").Config()).(map[string]any)["indexes"], []any{"age"})
	assert.DeepEqual(t, runAll(t, sess, r.DB("app").TableList()), []any{"users"})
	assert.DeepEqual(t, runAtom(t, sess, r.DB("app").Table("users").Sync()), map[string]any{"synced": float64(1)})
	assert.DeepEqual(t, runAll(t, sess, r.DBList()), []any{"app", "rethinkdb", "test"})
}

func TestInsertAndReadTypes(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")
	tbl := r.DB("d").Table("t")

	when := time.Date(2021, 3, 4, 5, 6, 7, 123000000, time.UTC)
	docs := []map[string]any{
		{"id": 1, "when": when, "blob": []byte{0, 1, 2, 255}, "name": "Zoë — 日本語 🚀", "nested": []any{[]any{1, 2}, []any{"a", []any{true, nil}}}},
		{"id": "b", "obj": map[string]any{"x": []any{1.5}}},
	}
	res := runAtom(t, sess, tbl.Insert(docs)).(map[string]any)
	assert.DeepEqual(t, res, map[string]any{"deleted": 0.0, "errors": 0.0, "inserted": 2.0, "replaced": 0.0, "skipped": 0.0, "unchanged": 0.0})

	// Generated keys.
	res = runAtom(t, sess, tbl.Insert(map[string]any{"v": 1})).(map[string]any)
	keys := res["generated_keys"].([]any)
	assert.Equal(t, len(keys), 1)
	assert.Equal(t, len(keys[0].(string)), 36)

	// Duplicate key, RethinkDB wording.
	res = runAtom(t, sess, tbl.Insert(map[string]any{"id": 1})).(map[string]any)
	assert.Equal(t, res["errors"], 1.0)
	assert.Assert(t, is.Contains(res["first_error"].(string), "Duplicate primary key `id`:\n{\n\t\"blob\":\t{"))

	// Conflict modes.
	res = runAtom(t, sess, tbl.Insert(map[string]any{"id": "b", "obj": map[string]any{"y": 2}}, r.InsertOpts{Conflict: "update"})).(map[string]any)
	assert.Equal(t, res["replaced"], 1.0)
	res = runAtom(t, sess, tbl.Insert(map[string]any{"id": "b", "obj": map[string]any{"x": []any{1.5}, "y": 2}}, r.InsertOpts{Conflict: "replace"})).(map[string]any)
	assert.Equal(t, res["unchanged"], 1.0)

	var got map[string]any
	assert.NilError(t, tbl.Get(1).ReadOne(&got, sess))
	assert.Assert(t, got["when"].(time.Time).Equal(when))
	assert.DeepEqual(t, got["blob"], []byte{0, 1, 2, 255})
	assert.Equal(t, got["name"], "Zoë — 日本語 🚀")
	assert.DeepEqual(t, got["nested"], []any{[]any{1.0, 2.0}, []any{"a", []any{true, nil}}})

	// Raw pseudo-types on the wire.
	cur, err := tbl.Get(1).Run(sess)
	assert.NilError(t, err)
	raw, ok := cur.NextResponse()
	assert.Assert(t, ok)
	var m map[string]json.RawMessage
	assert.NilError(t, json.Unmarshal(raw, &m))
	assert.Equal(t, string(m["when"]), `{"$reql_type$":"TIME","epoch_time":1614834367.123,"timezone":"+00:00"}`)
	assert.Equal(t, string(m["blob"]), `{"$reql_type$":"BINARY","data":"AAEC/w=="}`)

	assert.Equal(t, runAtom(t, sess, tbl.Count()), 3.0)
	res = runAtom(t, sess, tbl.Get("b").Delete()).(map[string]any)
	assert.Equal(t, res["deleted"], 1.0)
	res = runAtom(t, sess, tbl.Delete()).(map[string]any)
	assert.Equal(t, res["deleted"], 2.0)
	assert.Equal(t, runAtom(t, sess, tbl.Count()), 0.0)

	// Time terms.
	got2 := runAtom(t, sess, r.ISO8601("2020-01-02T03:04:05.5+02:00"))
	assert.Assert(t, got2.(time.Time).Equal(time.Date(2020, 1, 2, 1, 4, 5, 500000000, time.UTC)))
	assert.Assert(t, runAtom(t, sess, r.EpochTime(10)).(time.Time).Equal(time.Unix(10, 0)))
}

func TestScanBatches(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")
	tbl := r.DB("d").Table("t")
	var docs []map[string]any
	for i := 0; i < 23; i++ {
		docs = append(docs, map[string]any{"id": fmt.Sprintf("k%02d", 22-i), "at": time.Unix(int64(i), 0)})
	}
	docs = append(docs, map[string]any{"id": 5}, map[string]any{"id": -1.5})
	mustRun(t, sess, tbl.Insert(docs))

	cur, err := tbl.Run(sess, r.RunOpts{MaxBatchRows: 4})
	assert.NilError(t, err)
	var ids []string
	for {
		raw, ok := cur.NextResponse()
		if !ok {
			break
		}
		var row map[string]json.RawMessage
		assert.NilError(t, json.Unmarshal(raw, &row))
		ids = append(ids, string(row["id"]))
		if at, ok := row["at"]; ok {
			assert.Assert(t, is.Contains(string(at), `"$reql_type$":"TIME"`))
		}
	}
	assert.NilError(t, cur.Err())
	assert.Equal(t, len(ids), 25)
	assert.Equal(t, ids[0], "-1.5") // numbers sort before strings
	assert.Equal(t, ids[1], "5")
	assert.Equal(t, ids[2], `"k00"`)
	assert.Equal(t, ids[24], `"k22"`)

	// STOP mid-cursor, then the connection keeps working.
	cur, err = tbl.Run(sess, r.RunOpts{MaxBatchRows: 2})
	assert.NilError(t, err)
	var one map[string]any
	assert.Assert(t, cur.Next(&one))
	assert.NilError(t, cur.Close())
	assert.Equal(t, runAtom(t, sess, tbl.Count()), 25.0)

	// Byte-limited batches still deliver every row.
	var all []map[string]any
	assert.NilError(t, tbl.OrderBy(r.OrderByOpts{Index: r.Desc("id")}).ReadAll(&all, sess, r.RunOpts{MaxBatchBytes: 10}))
	assert.Equal(t, len(all), 25)
	assert.Equal(t, all[0]["id"], "k22")
}

func TestLargeScan(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "big")
	tbl := r.DB("d").Table("big")
	start := time.Now()
	const n, chunk = 200000, 10000
	for i := 0; i < n; i += chunk {
		docs := make([]map[string]any, chunk)
		for j := range docs {
			docs[j] = map[string]any{"id": i + j, "name": fmt.Sprintf("row-%d", i+j), "tags": []string{"a", "b"}}
		}
		mustRun(t, sess, tbl.Insert(docs, r.InsertOpts{Durability: "soft"}))
	}
	cur, err := tbl.Run(sess)
	assert.NilError(t, err)
	count, prev := 0, -1.0
	var row struct {
		ID float64 `rethinkdb:"id"`
	}
	for cur.Next(&row) {
		assert.Assert(t, row.ID > prev)
		prev = row.ID
		count++
	}
	assert.NilError(t, cur.Err())
	assert.Equal(t, count, n)
	assert.Assert(t, time.Since(start) < 20*time.Second, "took %v", time.Since(start))
	t.Logf("200k insert+scan: %v", time.Since(start))
}
