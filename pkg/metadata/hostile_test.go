package metadata

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func problemsOf(rep *archive.Report) string {
	var s []string
	for _, p := range rep.Problems {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}

func dbList(t *testing.T, srv server) []string {
	t.Helper()
	var dbs []string
	assert.NilError(t, r.DBList().ReadAll(&dbs, srv.driver))
	return dbs
}

// A restore plans only from a report Verify made and found nothing wrong
// in: inspect reads headers only, and a report with problems is refused.
func TestRestoreNeedsAVerifiedArchive(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	s := connect(t, srv.opts)
	p := backupToFile(t, s)
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()

	ins, err := archive.Inspect(f)
	assert.NilError(t, err)
	assert.Assert(t, ins.OK())
	_, err = MakePlan(context.Background(), s, ins)
	assert.ErrorContains(t, err, "the archive was not verified, or did not verify")

	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	rep.Problems = append(rep.Problems, archive.Problem{Message: "something"})
	_, err = MakePlan(context.Background(), s, rep)
	assert.ErrorContains(t, err, "the archive was not verified, or did not verify")
}

// Tables of RethinkDB's system database, and names RethinkDB would refuse,
// never reach the server: Verify refuses them, and should a report or plan
// name one anyway, MakePlan and Restore refuse before they change anything.
func TestRestoreRefusesSystemAndInvalidTables(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	dtrtest.Seed(t, srv.driver)
	s := connect(t, srv.opts)
	f, good := verifyFile(t, backupToFile(t, s))
	before := dtrtest.Snapshot(t, srv.driver)
	dbsBefore := dbList(t, srv)

	// docker/dtr backups name directories by table: these never verify
	for dir, want := range map[string]string{
		"rethinkdb.users": `invalid table name "rethinkdb.users"`,
		"bad name":        `invalid table name "bad name"`,
	} {
		p := backuptest.OfficialArchive(t, map[string][]string{"properties": {`{"id":"ha.json"}`}, dir: {`{"id":"x"}`}})
		g, err := os.Open(p)
		assert.NilError(t, err)
		rep, err := archive.Verify(g)
		g.Close()
		assert.NilError(t, err)
		assert.Assert(t, !rep.OK(), dir)
		assert.Assert(t, is.Contains(problemsOf(rep), want), dir)
	}

	for name, tc := range map[string]struct {
		db, table string
		want      string
	}{
		"system database":         {"rethinkdb", "users", "table rethinkdb.users is in RethinkDB's system database"},
		"dot in a table name":     {"dtr2", "a.b", `invalid table name "a.b"`},
		"invalid database name":   {"dtr-2;", "tags", `invalid database name "dtr-2;"`},
		"table name over 127 ch.": {"dtr2", strings.Repeat("x", 128), "invalid table name"},
	} {
		t.Run(name, func(t *testing.T) {
			// a verified report, changed after the fact
			rep := *good
			defs := *good.Definitions
			defs.Tables = append([]archive.Table{}, good.Definitions.Tables...)
			rep.Definitions = &defs
			rep.Tables = append([]archive.TableStats{}, good.Tables...)
			defs.Tables[0].DB, defs.Tables[0].Name = tc.db, tc.table
			rep.Tables[0].DB, rep.Tables[0].Table = tc.db, tc.table
			_, err := MakePlan(context.Background(), s, &rep)
			assert.ErrorContains(t, err, tc.want)

			// a plan made for a good report, changed after the fact
			plan, err := MakePlan(context.Background(), s, good)
			assert.NilError(t, err)
			plan.Tables[0].DB, plan.Tables[0].Name = tc.db, tc.table
			_, err = Restore(context.Background(), s, f, good, plan, RestoreOptions{Force: true})
			assert.ErrorContains(t, err, tc.want)
			var partial *PartialError
			assert.Assert(t, !errors.As(err, &partial), "refused before any change")

			assert.DeepEqual(t, dbList(t, srv), dbsBefore)
			assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
		})
	}
}

// A document over RethinkDB's query size limit: Verify refuses it with its
// table and number, so that a restore stops before any change; and should
// one get to the loader anyway, it stops there, naming it, and inserts
// nothing of it.
func TestDocumentOverTheLimitIsRefused(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	big := `{"id":"big","pad":"` + strings.Repeat("x", archive.MaxDocumentSize-len(`{"id":"big","pad":""}`)+1) + `"}`
	p := backuptest.OfficialArchive(t, map[string][]string{
		"properties": {`{"id":"ha.json"}`},
		"tags":       {`{"id":"small"}`, big},
	})
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, !rep.OK())
	assert.Assert(t, is.Contains(problemsOf(rep),
		"dtr-backup-v2.9.4-online/rethink/tags/1: document 1 of table dtr2.tags is 67108865 bytes, over the 67108864 byte (64.0 MiB) document limit"))

	s := connect(t, srv.opts)
	dbsBefore := dbList(t, srv)
	_, err = MakePlan(context.Background(), s, rep)
	assert.ErrorContains(t, err, "did not verify")
	assert.DeepEqual(t, dbList(t, srv), dbsBefore)

	// past verify by mistake: the loader refuses the document
	forged := *rep
	forged.Problems = nil
	assert.Equal(t, forged.Tables[1].Dir, "tags")
	plan, err := MakePlan(context.Background(), s, &forged)
	assert.NilError(t, err)
	_, err = Restore(context.Background(), s, f, &forged, plan, RestoreOptions{})
	assert.ErrorContains(t, err, "document 1 of table directory tags is 67108865 bytes, over the 67108864 byte (64.0 MiB) document limit")
	var n int
	assert.NilError(t, r.DB("dtr2").Table("tags").Filter(map[string]any{"id": "big"}).Count().ReadOne(&n, srv.driver))
	assert.Equal(t, n, 0)
}
