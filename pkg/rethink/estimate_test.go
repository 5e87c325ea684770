package rethink

import (
	"context"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/rethinktest"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

func TestEstimate(t *testing.T) {
	srv, err := rethinktest.Start(rethinktest.Options{})
	assert.NilError(t, err)
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	s, err := Connect(ctx, Options{Addr: srv.Addr()})
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
	assert.Equal(t, n, int64(1234))
	_, err = s.Estimate(ctx, TableRef{DB: "dtr2", Table: "missing"})
	assert.ErrorContains(t, err, "estimating the size of dtr2.missing")
}
