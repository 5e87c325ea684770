package metadata

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// replacer is a restore's progress that, once a batch holding the row
// bulk-000000 is in, replaces that row with another, as a client writing
// while a restore loads would: the count stays right, the rows do not.
// Until the row is loaded (the other writer's batch may come first) each
// batch tries again.
type replacer struct {
	mu       sync.Mutex
	replaced bool
	driver   *r.Session
	t        *testing.T
}

func (p *replacer) Step(string, ...any) {}

func (p *replacer) Add(rows, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replaced {
		return
	}
	bulk := r.DB("dtr2").Table("bulk")
	res, err := bulk.Get("bulk-000000").Delete().RunWrite(p.driver)
	if !assert.Check(p.t, err) || res.Deleted == 0 {
		return
	}
	_, err = bulk.Insert(map[string]any{"id": "intruder"}).RunWrite(p.driver)
	assert.Check(p.t, err)
	p.replaced = true
}

// A restore whose counts match but whose rows are not the archive's fails:
// every primary key of the archive is looked up after the load.
func TestRestoreFailsWhenARowWasReplaced(t *testing.T) {
	t.Parallel()
	srv := startTLS(t)
	_, err := r.DBCreate("dtr2").RunWrite(srv.driver)
	assert.NilError(t, err)
	seedBulk(t, srv.driver, 2500)
	before := dtrtest.Snapshot(t, srv.driver)
	s := connect(t, srv.opts)
	f, rep := verifyFile(t, backupToFile(t, s))
	dtrtest.DropAll(t, srv.driver)

	plan, err := MakePlan(context.Background(), s, rep)
	assert.NilError(t, err)
	intruder := &replacer{driver: srv.driver, t: t}
	_, err = Restore(context.Background(), s, f, rep, plan, RestoreOptions{Writers: 2, BatchRows: 100, Progress: intruder})
	assert.Assert(t, intruder.replaced, "bulk-000000 was never loaded while the restore ran")
	assert.ErrorContains(t, err, `restored dtr2.bulk lacks the document with primary key "bulk-000000" that the archive holds`)
	var partial *PartialError
	assert.Assert(t, errors.As(err, &partial), "a failed restore, after changes: %v", err)

	// The same restore with nothing in its way succeeds, and says so.
	dtrtest.DropAll(t, srv.driver)
	plan, err = MakePlan(context.Background(), s, rep)
	assert.NilError(t, err)
	res, err := Restore(context.Background(), s, f, rep, plan, RestoreOptions{Writers: 2, BatchRows: 100})
	assert.NilError(t, err)
	assert.Equal(t, res[0].Rows, int64(2500))
	assert.DeepEqual(t, dtrtest.Snapshot(t, srv.driver), before)
}
