package rethink

import (
	"context"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// The real server estimates a table's rows from its B-tree's key
// distribution: near the count, rarely equal to it (1190 for 1234 here).
func TestEstimate(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	ctx := context.Background()
	s, err := Connect(ctx, Options{Addr: srv.Addr})
	assert.NilError(t, err)
	t.Cleanup(func() { s.Close() })

	ref := TableRef{DB: "dtr2", Table: "events"}
	assert.NilError(t, s.one(ctx, r.DBCreate(ref.DB), &struct{}{}))
	assert.NilError(t, s.one(ctx, r.DB(ref.DB).TableCreate(ref.Table), &struct{}{}))
	docs := make([]map[string]any, 1234)
	for i := range docs {
		docs[i] = map[string]any{"id": i}
	}
	assert.NilError(t, s.one(ctx, r.DB(ref.DB).Table(ref.Table).Insert(docs), &struct{}{}))

	n, err := s.Estimate(ctx, ref)
	assert.NilError(t, err)
	assert.Assert(t, n > 1234*3/4 && n < 1234*5/4, "estimate %d for 1234 rows", n)
	count, err := s.Count(ctx, ref)
	assert.NilError(t, err)
	assert.Equal(t, count, int64(1234))
	_, err = s.Estimate(ctx, TableRef{DB: "dtr2", Table: "missing"})
	assert.ErrorContains(t, err, "estimating the size of dtr2.missing")
}
