package rethinktest

import (
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// info answers as RethinkDB 2.x documents it: for a table, its database,
// id, name, primary key, index names and one document-count estimate per
// shard; for a database, its id and name; for a datum, its type and JSON.
func TestInfo(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")
	tbl := r.DB("d").Table("t")
	mustRun(t, sess, tbl.Insert([]map[string]any{{"id": 1, "n": "a"}, {"id": 2, "n": "b"}, {"id": 3, "n": "c"}}))
	mustRun(t, sess, tbl.IndexCreate("n"))
	mustRun(t, sess, tbl.IndexCreate("m"))

	var dbInfo map[string]any
	assert.NilError(t, r.DB("d").Info().ReadOne(&dbInfo, sess))
	assert.Equal(t, dbInfo["type"], "DB")
	assert.Equal(t, dbInfo["name"], "d")
	id, _ := dbInfo["id"].(string)
	assert.Assert(t, len(id) == 36, "db id %v", dbInfo["id"])

	var info map[string]any
	assert.NilError(t, tbl.Info().ReadOne(&info, sess))
	assert.DeepEqual(t, info["db"], dbInfo)
	assert.Equal(t, info["type"], "TABLE")
	assert.Equal(t, info["name"], "t")
	assert.Equal(t, info["primary_key"], "id")
	assert.DeepEqual(t, info["indexes"], []any{"m", "n"})
	assert.DeepEqual(t, info["doc_count_estimates"], []any{3.0})
	var cfg map[string]any
	assert.NilError(t, tbl.Config().ReadOne(&cfg, sess))
	assert.Equal(t, info["id"], cfg["id"])

	mustRun(t, sess, tbl.Get(2).Delete())
	var est []float64
	assert.NilError(t, tbl.Info().Field("doc_count_estimates").ReadAll(&est, sess))
	assert.DeepEqual(t, est, []float64{2})

	var num map[string]any
	assert.NilError(t, r.Expr(1.5).Info().ReadOne(&num, sess))
	assert.DeepEqual(t, num, map[string]any{"type": "NUMBER", "value": "1.5"})
	var obj map[string]any
	assert.NilError(t, r.Expr(map[string]any{"b": 1, "a": "x"}).Info().ReadOne(&obj, sess))
	assert.DeepEqual(t, obj, map[string]any{"type": "OBJECT", "value": `{"a":"x","b":1}`})

	_, err := r.DB("d").Table("missing").Info().Run(sess)
	assert.ErrorContains(t, err, "Table `d.missing` does not exist.")
}
