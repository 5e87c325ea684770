package rethinktest

import (
	"encoding/base64"
	"fmt"
	"sort"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

func ids(t *testing.T, sess *r.Session, q r.Term) []string {
	t.Helper()
	var rows []map[string]any
	assert.NilError(t, q.ReadAll(&rows, sess))
	out := []string{}
	for _, row := range rows {
		out = append(out, fmt.Sprint(row["id"]))
	}
	sort.Strings(out)
	return out
}

func TestIndexRoundTrip(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "src")
	mustRun(t, sess, r.DB("d").TableCreate("dst"))
	src, dst := r.DB("d").Table("src"), r.DB("d").Table("dst")
	docs := []map[string]any{
		{"id": "a", "last": "Smith", "first": "Ann", "tags": []string{"x", "y"}},
		{"id": "b", "last": "Smith", "first": "Bob", "tags": []string{"y"}},
		{"id": "c", "last": "Jones", "first": "Cy", "tags": []string{}},
		{"id": "d", "first": "NoLast"},
	}
	mustRun(t, sess, src.Insert(docs))
	mustRun(t, sess, dst.Insert(docs))

	mustRun(t, sess, src.IndexCreate("last"))
	mustRun(t, sess, src.IndexCreateFunc("full", func(row r.Term) any { return []any{row.Field("last"), row.Field("first")} }))
	mustRun(t, sess, src.IndexCreateFunc("tags", func(row r.Term) any { return row.Field("tags") }, r.IndexCreateOpts{Multi: true}))
	_, err := src.IndexWait().Run(sess)
	assert.NilError(t, err)

	assert.DeepEqual(t, ids(t, sess, src.GetAll("Smith").OptArgs(r.GetAllOpts{Index: "last"})), []string{"a", "b"})
	assert.DeepEqual(t, ids(t, sess, src.GetAll([]any{"Smith", "Bob"}).OptArgs(r.GetAllOpts{Index: "full"})), []string{"b"})
	assert.DeepEqual(t, ids(t, sess, src.GetAll("y", "x").OptArgs(r.GetAllOpts{Index: "tags"})), []string{"a", "a", "b"})
	assert.DeepEqual(t, ids(t, sess, src.GetAll("a", "c", "zz")), []string{"a", "c"})

	var statuses []map[string]any
	assert.NilError(t, src.IndexStatus().ReadAll(&statuses, sess))
	assert.Equal(t, len(statuses), 3)
	assert.Equal(t, statuses[0]["index"], "full")
	assert.Equal(t, statuses[2]["multi"], true)
	assert.Equal(t, statuses[0]["ready"], true)
	assert.Equal(t, statuses[0]["outdated"], false)
	assert.Equal(t, statuses[0]["geo"], false)
	for _, st := range statuses {
		mustRun(t, sess, dst.IndexCreateFunc(st["index"], r.Binary(st["function"])))
	}
	var copied []map[string]any
	assert.NilError(t, dst.IndexStatus().ReadAll(&copied, sess))
	assert.DeepEqual(t, copied, statuses)
	for _, q := range []func(r.Term) r.Term{
		func(tb r.Term) r.Term { return tb.GetAll("Smith").OptArgs(r.GetAllOpts{Index: "last"}) },
		func(tb r.Term) r.Term { return tb.GetAll([]any{"Jones", "Cy"}).OptArgs(r.GetAllOpts{Index: "full"}) },
		func(tb r.Term) r.Term { return tb.GetAll("y").OptArgs(r.GetAllOpts{Index: "tags"}) },
	} {
		assert.DeepEqual(t, ids(t, sess, q(dst)), ids(t, sess, q(src)))
	}

	// Index on the index order.
	var ordered []map[string]any
	assert.NilError(t, src.OrderBy(r.OrderByOpts{Index: "last"}).ReadAll(&ordered, sess))
	assert.Equal(t, len(ordered), 3)
	assert.Equal(t, ordered[0]["id"], "c")

	_, err = src.IndexCreate("last").RunWrite(sess)
	assert.ErrorContains(t, err, "Index `last` already exists on table `d.src`.")
	_, err = dst.IndexCreateFunc("bad", r.Binary([]byte("nope"))).RunWrite(sess)
	assert.ErrorContains(t, err, "Cannot create an sindex except from a reql_index_function returned from `index_status` in the field `function`.")
	assert.DeepEqual(t, runAtom(t, sess, src.IndexDrop("last")), map[string]any{"dropped": 1.0})
	_, err = src.IndexDrop("last").RunWrite(sess)
	assert.ErrorContains(t, err, "Index `last` does not exist on table `d.src`.")
	_, err = src.GetAll("x").OptArgs(r.GetAllOpts{Index: "last"}).Run(sess)
	assert.ErrorContains(t, err, "Index `last` was not found on table `d.src`.")
}

func TestWriteHook(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "a")
	mustRun(t, sess, r.DB("d").TableCreate("b"))
	a, b := r.DB("d").Table("a"), r.DB("d").Table("b")

	assert.Equal(t, runRaw(t, sess, a.GetWriteHook()), "null")
	hook := func(id, oldVal, newVal r.Term) r.Term { return newVal.Merge(map[string]any{"modified": r.Now()}) }
	assert.DeepEqual(t, runAtom(t, sess, a.SetWriteHook(hook)), map[string]any{"created": 1.0})
	assert.DeepEqual(t, runAtom(t, sess, a.SetWriteHook(hook)), map[string]any{"replaced": 1.0})
	got := runAtom(t, sess, a.GetWriteHook()).(map[string]any)
	fn := got["function"].([]byte)
	assert.Assert(t, len(fn) > 0)
	assert.Assert(t, len(got["query"].(string)) > len("setWriteHook("))

	raw := fmt.Sprintf(`[189,[[15,[[14,["d"]],"b"]],{"$reql_type$":"BINARY","data":%q}]]`, base64.StdEncoding.EncodeToString(fn))
	assert.DeepEqual(t, runAtom(t, sess, r.RawQuery([]byte(raw))), map[string]any{"created": 1.0})
	assert.DeepEqual(t, runAtom(t, sess, b.GetWriteHook()), got)
	assert.DeepEqual(t, runAtom(t, sess, b.Config()).(map[string]any)["write_hook"], got)

	assert.DeepEqual(t, runAtom(t, sess, a.SetWriteHook(nil)), map[string]any{"deleted": 1.0})
	assert.Equal(t, runRaw(t, sess, a.GetWriteHook()), "null")

	bad := `[189,[[15,[[14,["d"]],"b"]],[69,[[2,[1]],[10,[1]]]]]]`
	_, err := r.RawQuery([]byte(bad)).Run(sess)
	assert.ErrorContains(t, err, "Write hook functions must expect 3 arguments.")
}
