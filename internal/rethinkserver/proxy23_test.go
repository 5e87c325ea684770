package rethinkserver

import (
	"errors"
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// Through the proxy, the terms 2.4 added are refused as 2.3 refuses them,
// before anything runs; everything else is the real server's.
func TestProxy23RefusesOnlyTheNewTerms(t *testing.T) {
	s := Start(t, Options{})
	direct := s.Connect(t)
	p := StartProxy23(t, s)
	old, err := r.Connect(r.ConnectOpts{Address: p.Addr})
	assert.NilError(t, err)
	defer old.Close()

	_, err = r.DBCreate("dtr2").RunWrite(old)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("tags").RunWrite(old)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("tags").Insert(map[string]any{"id": "a", "list": []any{1, 2}}).RunWrite(old)
	assert.NilError(t, err)

	_, err = r.DB("dtr2").Table("tags").GetWriteHook().Run(old)
	var ce r.RQLCompileError
	assert.Assert(t, errors.As(err, &ce), "%T %v", err, err)
	assert.ErrorContains(t, err, "Unrecognized TermType: 190.")
	_, err = r.DB("dtr2").Table("tags").SetWriteHook(func(id, oldVal, newVal r.Term) r.Term { return newVal }).RunWrite(old)
	assert.ErrorContains(t, err, "Unrecognized TermType: 189.")
	// Nested: refused as a whole, the insert around it does not run.
	_, err = r.DB("dtr2").Table("tags").Insert(map[string]any{"id": "b", "n": r.Expr(6).BitAnd(3)}).RunWrite(old)
	assert.ErrorContains(t, err, "Unrecognized TermType: 191.")

	_, err = r.DB("dtr2").Table("tags").GetWriteHook().Run(direct)
	assert.NilError(t, err, "the real server has write hooks")
	var n int
	assert.NilError(t, r.DB("dtr2").Table("tags").Count().ReadOne(&n, old))
	assert.Equal(t, n, 1)
}
