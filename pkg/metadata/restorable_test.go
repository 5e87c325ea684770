package metadata

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// What the real server accepts, verify accepts: index functions with
// options, nested functions, geo and compound indexes, a write hook with
// options, and every pseudo-type and kind of primary key the server takes.
// A table outside DTR's databases is left out of the backup, and listed.
func TestVerifyAcceptsWhatRethinkDBAccepts(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	d := srv.driver
	exec := func(q r.Term) {
		t.Helper()
		_, err := q.RunWrite(d)
		assert.NilError(t, err)
	}
	exec(r.DBCreate("dtr2"))
	exec(r.DB("dtr2").TableCreate("shapes"))
	exec(r.DB("dtr2").TableCreate("keys"))
	shapes := r.DB("dtr2").Table("shapes")
	exec(shapes.IndexCreateFunc("window", func(row r.Term) any {
		return row.Field("list").Slice(0, 2, r.SliceOpts{LeftBound: "open", RightBound: "closed"})
	}))
	exec(shapes.IndexCreateFunc("sums", func(row r.Term) any {
		return row.Field("list").Map(func(x r.Term) any { return x.Add(row.Field("n")) })
	}, r.IndexCreateOpts{Multi: true}))
	exec(shapes.IndexCreateFunc("kind", func(row r.Term) any {
		return r.Branch(row.HasFields("kind"), row.Field("kind"), "none")
	}))
	exec(shapes.IndexCreate("where", r.IndexCreateOpts{Geo: true}))
	exec(shapes.SetWriteHook(func(id, oldVal, newVal r.Term) r.Term {
		return newVal.Merge(map[string]any{"seen": r.ISO8601("2024-01-01T00:00:00", r.ISO8601Opts{DefaultTimezone: "+01:00"})})
	}))
	docs := []string{
		`{"id":"a","n":1,"list":[1,2,3],"where":{"$reql_type$":"GEOMETRY","type":"Point","coordinates":[1,2]}}`,
		`{"id":"b","n":2,"list":[],"t1":{"$reql_type$":"TIME","epoch_time":1,"timezone":"Z"},"t2":{"$reql_type$":"TIME","epoch_time":-1e12,"timezone":"+24:00"},"t3":{"$reql_type$":"TIME","epoch_time":1,"timezone":"+0530"},"t4":{"$reql_type$":"TIME","epoch_time":1,"timezone":"-05"}}`,
		`{"id":"c","b1":{"$reql_type$":"BINARY","data":"AAE"},"b2":{"$reql_type$":"BINARY","data":"AA\r\nEC"},"b3":{"$reql_type$":"BINARY","data":""},"g":{"$reql_type$":"GEOMETRY","type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[0,0]]]}}`,
		`{"id":"d","nested":[{"x":{"$reql_type$":"TIME","epoch_time":2,"timezone":"+00:00"}}],"\u0024reql":"not a pseudo-type"}`,
	}
	s := connect(t, srv.opts)
	ctx := context.Background()
	for _, doc := range docs {
		_, err := s.Insert(ctx, rethink.TableRef{DB: "dtr2", Table: "shapes"}, [][]byte{[]byte(doc)})
		assert.NilError(t, err, doc)
	}
	keys := []string{`{"id":1}`, `{"id":1.5}`, `{"id":true}`, `{"id":[1,"a"]}`, `{"id":""}`, `{"id":"ünïcødé"}`,
		`{"id":{"$reql_type$":"TIME","epoch_time":5,"timezone":"+00:00"}}`, `{"id":{"$reql_type$":"BINARY","data":"AAEC"}}`,
		`{"id":"x\u00e9"}`, `{"id":"xé2"}`, `{"id":"` + strings.Repeat("s", 127) + `"}`,
		// arrays at RethinkDB's limit: "A", then "S" and the string and a NUL for each
		`{"id":["` + strings.Repeat("a", 60) + `","` + strings.Repeat("b", 63) + `"]}`, `{"id":[["` + strings.Repeat("c", 123) + `"]]}`}
	for _, doc := range keys {
		_, err := s.Insert(ctx, rethink.TableRef{DB: "dtr2", Table: "keys"}, [][]byte{[]byte(doc)})
		assert.NilError(t, err, doc)
	}
	exec(r.DBCreate("other"))
	exec(r.DB("other").TableCreate("t"))
	before := dtrtest.Snapshot(t, d)

	p := backupToFile(t, s)
	f, rep := verifyFile(t, p)
	assert.Assert(t, rep.Verified)
	assert.Equal(t, len(rep.Tables), 2)
	var other []string
	for _, x := range rep.Excluded {
		other = append(other, x.DB+"."+x.Table+": "+x.Reason)
	}
	assert.DeepEqual(t, other, []string{"other.t: " + NotDTRReason})

	exec(r.DBDrop("dtr2"))
	_, _, err := restore(t, s, f, rep, false)
	assert.NilError(t, err)
	after := dtrtest.Snapshot(t, d)
	delete(before, "other.t")
	delete(after, "other.t")
	b1, _ := json.Marshal(before)
	b2, _ := json.Marshal(after)
	assert.Equal(t, string(b2), string(b1))
}
