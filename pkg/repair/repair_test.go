package repair

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// cluster is the surviving server's view, changed as a repair changes the
// real one: what Run plans from and works on. events records the order
// of what Run does.
type cluster struct {
	server    string
	connected []string
	tables    []dbhealth.Table
	failAt    int // the Fix call (1-based) that fails; 0 for none
	fixes     int
	rescaled  map[string]int
	events    *[]string
}

func (c *cluster) Health(context.Context) (*dbhealth.Health, error) {
	return &dbhealth.Health{Server: c.server, Connected: c.connected, Tables: slices.Clone(c.tables)}, nil
}

// Revert makes a table take writes again, as the real one does once
// its survivors have elected a primary: it still lists the lost servers.
func (c *cluster) Revert(_ context.Context, t Table) error {
	c.fixes++
	if c.fixes == c.failAt {
		return errors.New("connection lost")
	}
	*c.events = append(*c.events, "revert "+t.String())
	c.table(t).ReadyForWrites = true
	return nil
}

func (c *cluster) Settle(_ context.Context, t Table) error {
	*c.events = append(*c.events, "settle "+t.String())
	tb := c.table(t)
	if !tb.ReadyForWrites {
		return errors.New("settled before it was reverted")
	}
	tb.Servers = t.Stays
	return nil
}

func (c *cluster) table(t Table) *dbhealth.Table {
	for i := range c.tables {
		if c.tables[i].String() == t.String() {
			return &c.tables[i]
		}
	}
	panic("no table " + t.String())
}

func (c *cluster) Rescale(_ context.Context, t Table, n int) error {
	c.rescaled[t.String()] = n
	return nil
}

// lostMajority is a survivor (s3) cut off from s1 and s2: three DTR
// tables take no writes, a table of another database is not DTR's.
func lostMajority(events *[]string) *cluster {
	all := []string{"s1", "s2", "s3"}
	return &cluster{
		server: "s3", connected: []string{"s3"}, rescaled: map[string]int{}, events: events,
		tables: []dbhealth.Table{
			{DB: "dtr2", Name: "repositories", Servers: all},
			{DB: "dtr2", Name: "tags", Servers: all},
			{DB: "notaryserver", Name: "tuf_files", Servers: all},
			{DB: "other", Name: "x", Servers: all},
		},
	}
}

type store struct {
	journal.FileStore
	events *[]string
}

func (s store) Save(ctx context.Context, r *journal.Record) error {
	*s.events = append(*s.events, "journal saved")
	return s.FileStore.Save(ctx, r)
}

func newStore(t *testing.T, events *[]string) store {
	return store{FileStore: journal.FileStore{Path: filepath.Join(t.TempDir(), "journal.json")}, events: events}
}

func TestMakePlan(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	c.tables[1].ReadyForWrites = true // a table already repaired, still listing the lost servers
	h, _ := c.Health(context.Background())
	p := MakePlan(h)
	assert.Equal(t, len(p.Tables), 3, "only DTR's databases")
	assert.DeepEqual(t, p.Tables[0], Table{DB: "dtr2", Name: "repositories", Replicas: []string{"s1", "s2", "s3"},
		Unreachable: []string{"s1", "s2"}, Stays: []string{"s3"}, Action: ActionRepair})
	assert.Equal(t, p.Tables[1].Action, ActionDrop)
	assert.DeepEqual(t, Names(p.Lost()), []string{"dtr2.repositories", "notaryserver.tuf_files"})
	assert.Equal(t, len(p.Changes()), 3)
	assert.Equal(t, len(p.Stranded()), 0)

	c.tables[0].Servers = []string{"s1", "s2"}
	h, _ = c.Health(context.Background())
	assert.DeepEqual(t, Names(MakePlan(h).Stranded()), []string{"dtr2.repositories"})
}

// TestPlanElecting is one server cut off from three: the tables whose
// primary it was take no writes for a few seconds on the other two while
// they elect a new one. Those still have their majority: nothing to
// repair, whichever view the plan is made from with that majority. The
// cut-off server's own view lost it.
func TestPlanElecting(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	c.server, c.connected = "s2", []string{"s2", "s3"}
	c.tables[0].ReadyForWrites = true
	c.tables[2].ReadyForWrites = true
	h, _ := c.Health(context.Background())
	p := MakePlan(h)
	assert.Equal(t, p.Tables[1].Action, ActionElect)
	assert.Equal(t, len(p.Lost()), 0)
	assert.DeepEqual(t, Names(p.Electing()), []string{"dtr2.tags"})
	err := NothingToRepair(p)
	assert.ErrorContains(t, err, "nothing to repair: RethinkDB server s2 has its majority: it reaches a majority of the replicas of all 3 of DTR's tables, and dtr2.tags will take writes once they have elected a new primary")
	assert.Assert(t, IsNothingToRepair(err))

	_, err = Run(context.Background(), c, Options{Journal: newStore(t, &ev), Confirm: func(*Plan, bool) error { t.Fatal("asked"); return nil }})
	assert.Assert(t, IsNothingToRepair(err))
	assert.Equal(t, len(ev), 0)

	// Two of two replicas are a majority; one of two is not.
	c.tables[1].Servers = []string{"s1", "s2"}
	h, _ = c.Health(context.Background())
	assert.DeepEqual(t, Names(MakePlan(h).Lost()), []string{"dtr2.tags"})

	c.server, c.connected = "s1", []string{"s1"}
	for i := range c.tables {
		c.tables[i].ReadyForWrites, c.tables[i].Servers = false, []string{"s1", "s2", "s3"}
	}
	h, _ = c.Health(context.Background())
	assert.Equal(t, len(MakePlan(h).Lost()), 3)
	assert.NilError(t, NothingToRepair(MakePlan(h)))
}

func TestRunHealthy(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	for i := range c.tables {
		c.tables[i].ReadyForWrites = true
		c.tables[i].Servers = []string{"s1", "s2", "s3"}
	}
	c.connected = []string{"s1", "s2", "s3"}
	o := Options{Journal: newStore(t, &ev), Confirm: func(*Plan, bool) error { t.Fatal("asked"); return nil }}
	_, err := Run(context.Background(), c, o)
	var nothing *NothingToRepairError
	assert.Assert(t, errors.As(err, &nothing))
	assert.ErrorContains(t, err, "nothing to repair: RethinkDB server s3 has its majority and all 3 of DTR's tables take writes")
	assert.Equal(t, len(ev), 0)

	// A rescale alone is not refused.
	o.Replicas, o.Confirm = 3, nil
	res, err := Run(context.Background(), c, o)
	assert.NilError(t, err)
	assert.Equal(t, len(res.Rescaled), 3)
	assert.Equal(t, c.rescaled["dtr2.tags"], 3)
}

func TestRunDryRun(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	res, err := Run(context.Background(), c, Options{DryRun: true, Journal: newStore(t, &ev), Safety: func(context.Context) (string, string, error) {
		t.Fatal("a dry run backed up")
		return "", "", nil
	}})
	assert.NilError(t, err)
	assert.Assert(t, res.DryRun)
	assert.Equal(t, len(res.Plan.Lost()), 3)
	assert.Equal(t, len(ev), 0, "nothing changed, nothing recorded: %v", ev)
}

func TestRunKilledHalfwayThenFinished(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	c.failAt = 2
	st := newStore(t, &ev)
	asked := 0
	o := Options{
		Journal: st, Record: journal.Record{Replica: "r3", Node: "n3"},
		Confirm: func(_ *Plan, resuming bool) error { asked++; return nil },
		Safety: func(context.Context) (string, string, error) {
			ev = append(ev, "safety")
			return "/backups/s.tar", "abc", nil
		},
	}
	res, err := Run(context.Background(), c, o)
	assert.ErrorContains(t, err, "connection lost (1 of 3 tables reverted; run docker dtr repair again to finish)")
	assert.DeepEqual(t, ev, []string{"safety", "journal saved", "revert dtr2.repositories"})
	assert.Equal(t, len(res.Changed), 0)
	rec, err := st.Load(context.Background())
	assert.NilError(t, err)
	assert.Equal(t, rec.Kind, journal.KindRepair)
	assert.Equal(t, rec.Replica, "r3")
	assert.Equal(t, rec.Safety, "/backups/s.tar")
	assert.Equal(t, len(rec.Tables), 3)

	// The next run finishes: no second safety backup, no second journal.
	ev = nil
	var resumed bool
	o.Confirm = func(_ *Plan, resuming bool) error { resumed = resuming; return nil }
	res, err = Run(context.Background(), c, o)
	assert.NilError(t, err)
	assert.Assert(t, res.Resumed && resumed)
	assert.Equal(t, res.Safety, "/backups/s.tar")
	// The table reverted before the kill is not reverted again, only
	// settled.
	assert.DeepEqual(t, ev, []string{"revert dtr2.tags", "revert notaryserver.tuf_files",
		"settle dtr2.repositories", "settle dtr2.tags", "settle notaryserver.tuf_files"})
	rec, err = st.Load(context.Background())
	assert.NilError(t, err)
	assert.Assert(t, rec == nil, "the journal is removed once every table takes writes")
	assert.Equal(t, len(MakePlan(res.After).Changes()), 0)

	// And then there is nothing to repair.
	_, err = Run(context.Background(), c, o)
	assert.Assert(t, IsNothingToRepair(err))
}

func TestRunRefusals(t *testing.T) {
	var ev []string
	c := lostMajority(&ev)
	c.tables[0].Servers = []string{"s1", "s2"}
	_, err := Run(context.Background(), c, Options{Journal: newStore(t, &ev)})
	assert.ErrorContains(t, err, "cannot repair from RethinkDB server s3: it holds no replica of dtr2.repositories (their replicas are on s1, s2): repair from the replica that holds them (--replica-id)")

	c = lostMajority(&ev)
	_, err = Run(context.Background(), c, Options{Journal: newStore(t, &ev), Replicas: 2})
	assert.ErrorContains(t, err, "--replicas 2: RethinkDB server s3 reaches 1 servers (s3): join new replicas first")

	st := newStore(t, &ev)
	assert.NilError(t, st.FileStore.Save(context.Background(), &journal.Record{Kind: journal.KindMetadata, Replica: "r3"}))
	_, err = Run(context.Background(), c, Options{Journal: st})
	var pending *PendingError
	assert.Assert(t, errors.As(err, &pending))
	assert.Assert(t, is.Contains(err.Error(), "a metadata restore into replica r3 is unfinished"))

	_, err = Run(context.Background(), c, Options{Journal: newStore(t, &ev), Confirm: func(*Plan, bool) error { return errors.New("no") }})
	assert.Error(t, err, "no")
	assert.Equal(t, len(ev), 0)
	assert.Equal(t, c.fixes, 0)
}
