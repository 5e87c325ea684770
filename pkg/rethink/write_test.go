package rethink

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
)

func TestAppendTermWrapsArraysOnly(t *testing.T) {
	cases := map[string]string{
		`{"a":1}`:                         `{"a":1}`,
		`{"a":[1,[2,"x"]],"b":[]}`:        `{"a":[2,[1,[2,[2,"x"]]]],"b":[2,[]]}`,
		`{"s":"[not an array] \"[\" \\"}`: `{"s":"[not an array] \"[\" \\"}`,
		`{"s":"\\","t":["]"]}`:            `{"s":"\\","t":[2,["]"]]}`,
		`{"t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`: `{"t":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+00:00"}}`,
		`{"u":"日本語 [🐳]"}`:                                                 `{"u":"日本語 [🐳]"}`,
	}
	for in, want := range cases {
		assert.Equal(t, string(AppendTerm(nil, []byte(in))), want, in)
	}
}

// The real server learns of a new database thread by thread: a table
// created on another connection right after db_create may be refused with
// "does not exist" for a moment. TableCreate waits that out, as a restore
// into an emptied server does it, and still fails for a database that is
// not there.
func TestTableCreateRightAfterDBCreate(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	ctx := context.Background()
	s, err := Connect(ctx, Options{Addr: srv.Addr, CAFile: srv.Certs.CA, CertFile: srv.Certs.ClientCert,
		KeyFile: srv.Certs.ClientKey, ServerName: rethinkserver.ServerName, Connections: 8})
	assert.NilError(t, err)
	defer s.Close()
	for i := range 40 {
		assert.NilError(t, s.DBCreate(ctx, "dtr2"))
		var wg sync.WaitGroup
		for _, name := range []string{"blobs", "tags", "events", "manifests"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.Check(t, s.TableCreate(ctx, TableRef{DB: "dtr2", Table: name}, "id", nil), "round %d", i)
			}()
		}
		wg.Wait()
		assert.NilError(t, s.DBDrop(ctx, "dtr2"))
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = s.TableCreate(short, TableRef{DB: "nodb", Table: "t"}, "id", nil)
	assert.ErrorContains(t, err, "creating table nodb.t: ")
	assert.ErrorContains(t, err, "Database `nodb` does not exist")
}
