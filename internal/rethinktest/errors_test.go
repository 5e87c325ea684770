package rethinktest

import (
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

func TestErrorShapes(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")

	_, err := r.DB("nope").TableList().Run(sess)
	assert.ErrorContains(t, err, "Database `nope` does not exist.")
	assert.Assert(t, isType[r.RQLNonExistenceError](err))

	_, err = r.DB("d").Table("missing").Run(sess)
	assert.ErrorContains(t, err, "Table `d.missing` does not exist.")
	assert.Assert(t, isType[r.RQLNonExistenceError](err))

	_, err = r.DB("d").TableCreate("t").RunWrite(sess)
	assert.ErrorContains(t, err, "Table `d.t` already exists.")
	assert.Assert(t, isType[r.RQLOpFailedError](err))

	_, err = r.DBCreate("d").RunWrite(sess)
	assert.ErrorContains(t, err, "Database `d` already exists.")
	assert.Assert(t, isType[r.RQLOpFailedError](err))

	_, err = r.Expr(1).Run(sess, r.RunOpts{Durability: "medium"})
	assert.ErrorContains(t, err, "Durability option `medium` unrecognized")

	_, err = r.RawQuery([]byte(`[9999,[]]`)).Run(sess)
	assert.Assert(t, isType[r.RQLCompileError](err), "%T", err)

	_, err = r.RawQuery([]byte(`[15,[]]`)).Run(sess)
	assert.Assert(t, isType[r.RQLCompileError](err), "%T", err)

	_, err = r.Expr([]any{1, 2}).Zip().Run(sess)
	assert.ErrorContains(t, err, "not supported")

	_, err = r.DB("d").Table("t").Insert(map[string]any{"id": 1}, r.InsertOpts{ReturnChanges: true}).RunWrite(sess)
	assert.ErrorContains(t, err, "return_changes is not supported")

	// Connection still healthy after errors.
	assert.Equal(t, runAtom(t, sess, r.Expr(5)), 5.0)
}

func isType[T any](err error) bool {
	_, ok := err.(T)
	return ok
}

func TestSystemDB(t *testing.T) {
	s := startServer(t, Options{})
	sess := connect(t, s.Addr(), r.ConnectOpts{})
	setupTable(t, sess, "d", "t")
	assert.DeepEqual(t, runAll(t, sess, r.DB("rethinkdb").TableList()), []any{
		"cluster_config", "current_issues", "db_config", "jobs", "logs", "permissions",
		"server_config", "server_status", "stats", "table_config", "table_status", "users",
	})
	_, err := r.DB("rethinkdb").TableCreate("x").RunWrite(sess)
	assert.ErrorContains(t, err, "Database `rethinkdb` is special; you can't create new tables in it.")
	_, err = r.DBDrop("rethinkdb").RunWrite(sess)
	assert.ErrorContains(t, err, "Database `rethinkdb` is special; you can't delete it.")
	_, err = r.DBCreate("rethinkdb").RunWrite(sess)
	assert.ErrorContains(t, err, "Database `rethinkdb` already exists.")
	_, err = r.DB("rethinkdb").Table("users").Insert(map[string]any{"id": "x"}).RunWrite(sess)
	assert.Assert(t, err != nil)
	var cfgs []map[string]any
	assert.NilError(t, r.DB("rethinkdb").Table("table_config").ReadAll(&cfgs, sess))
	assert.Equal(t, len(cfgs), 1)
	assert.Equal(t, cfgs[0]["name"], "t")
}
