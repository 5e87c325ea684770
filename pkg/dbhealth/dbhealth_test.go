package dbhealth

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The real server's view of itself: connected, every table ready, held by
// it, no issue; RethinkDB's own tables left out.
func TestRead(t *testing.T) {
	srv := rethinkserver.Start(t, rethinkserver.Options{})
	driver := srv.Connect(t)
	assert.NilError(t, r.DBCreate("dtr2").Exec(driver))
	for _, name := range []string{"tags", "repositories"} {
		assert.NilError(t, r.DB("dtr2").TableCreate(name).Exec(driver))
	}
	assert.NilError(t, r.DB("dtr2").Wait().Exec(driver))
	s, err := rethink.Connect(context.Background(), rethink.Options{Addr: srv.Addr})
	assert.NilError(t, err)
	defer s.Close()

	h, err := Read(context.Background(), s)
	assert.NilError(t, err)
	assert.Assert(t, h.Server != "")
	assert.Check(t, is.DeepEqual(h.Connected, []string{h.Server}))
	assert.Assert(t, is.Len(h.Tables, 2))
	for i, want := range []string{"dtr2.repositories", "dtr2.tags"} {
		tb := h.Tables[i]
		assert.Check(t, is.Equal(tb.String(), want))
		assert.Check(t, tb.ReadyForOutdatedReads && tb.ReadyForReads && tb.ReadyForWrites && tb.AllReplicasReady, "%+v", tb)
		assert.Check(t, is.DeepEqual(tb.Servers, []string{h.Server}))
	}
	assert.Check(t, is.Len(h.Issues, 0))
	assert.Check(t, is.Len(h.Unwritable(), 0))
}

func replicas(ids ...string) []*dtr.Replica {
	var out []*dtr.Replica
	for _, id := range ids {
		out = append(out, &dtr.Replica{ID: id, Containers: []dtr.Container{{Component: "rethinkdb", State: "running"}}})
	}
	return out
}

// A replica is unhealthy in the database's eyes when its server is not
// connected, or a table it holds cannot take writes.
func TestProblems(t *testing.T) {
	reps := replicas("a", "b", "c")
	h := &Health{
		Server:    "dtr_rethinkdb_a",
		Connected: []string{"dtr_rethinkdb_a", "dtr_rethinkdb_b"},
		Tables: []Table{
			{DB: "dtr2", Name: "tags", ReadyForWrites: true, Servers: []string{"dtr_rethinkdb_a", "dtr_rethinkdb_b", "dtr_rethinkdb_c"}},
			{DB: "dtr2", Name: "events", Servers: []string{"dtr_rethinkdb_b"}},
		},
	}
	assert.Check(t, is.Len(h.Problems(reps[0]), 0))
	assert.Check(t, is.DeepEqual(h.Problems(reps[1]), []string{"dtr2.events cannot take writes"}))
	assert.Check(t, is.DeepEqual(h.Problems(reps[2]), []string{"its RethinkDB server dtr_rethinkdb_c is not connected to dtr_rethinkdb_a"}))
	assert.Check(t, is.Equal(h.Sees(reps), 2))
	for _, rep := range reps {
		rep.Healthy, rep.Problems = true, []string{"api is unhealthy"}
	}
	h.Mark(reps)
	assert.Check(t, reps[0].Healthy)
	assert.Check(t, !reps[1].Healthy && !reps[2].Healthy)
	assert.Check(t, is.DeepEqual(reps[2].Problems, []string{"api is unhealthy", "its RethinkDB server dtr_rethinkdb_c is not connected to dtr_rethinkdb_a"}))
}

// Survey stops at the first server that sees a majority, passes over the
// ones that cannot be asked, and keeps the widest view otherwise.
func TestSurvey(t *testing.T) {
	reps := replicas("a", "b", "c")
	reps[2].Containers[0].State = "exited"
	sees := func(names ...string) *Health { return &Health{Connected: names} }
	var asked []string
	var mu sync.Mutex
	ask := func(views map[string]*Health) Ask {
		asked = nil
		return func(_ context.Context, rep *dtr.Replica) (*Health, error) {
			mu.Lock()
			asked = append(asked, rep.ID)
			mu.Unlock()
			if h := views[rep.ID]; h != nil {
				return h, nil
			}
			return nil, errors.New("unreachable")
		}
	}
	ctx := context.Background()

	h, from, err := Survey(ctx, reps[1], reps, ask(map[string]*Health{"b": sees("dtr_rethinkdb_a", "dtr_rethinkdb_b")}))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(from.ID, "b"))
	assert.Check(t, is.Equal(h.Sees(reps), 2))
	assert.Check(t, is.DeepEqual(asked, []string{"b"}))

	// b is cut off; a sees the majority; c does not run and is not asked.
	h, from, err = Survey(ctx, reps[1], reps, ask(map[string]*Health{
		"b": sees("dtr_rethinkdb_b"), "a": sees("dtr_rethinkdb_a", "dtr_rethinkdb_c"),
	}))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(from.ID, "a"))
	assert.Check(t, is.Equal(h.Sees(reps), 2))
	assert.Check(t, is.DeepEqual(asked, []string{"b", "a"}))

	// Each sees itself alone: the first view stands.
	_, from, err = Survey(ctx, nil, reps, ask(map[string]*Health{"a": sees("dtr_rethinkdb_a"), "b": sees("dtr_rethinkdb_b")}))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(from.ID, "a"))
	assert.Check(t, is.DeepEqual(asked, []string{"a", "b"}))

	// Five replicas, the first cut off: the other four are asked at
	// once, and the widest view wins.
	five := replicas("a", "b", "c", "d", "e")
	h, from, err = Survey(ctx, five[0], five, ask(map[string]*Health{
		"a": sees("dtr_rethinkdb_a"), "c": sees("dtr_rethinkdb_b", "dtr_rethinkdb_c"),
		"d": sees("dtr_rethinkdb_b", "dtr_rethinkdb_c", "dtr_rethinkdb_d", "dtr_rethinkdb_e"),
	}))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(from.ID, "d"))
	assert.Check(t, is.Equal(h.Sees(five), 4))
	sort.Strings(asked)
	assert.Check(t, is.DeepEqual(asked, []string{"a", "b", "c", "d", "e"}))

	_, _, err = Survey(ctx, nil, reps, ask(nil))
	assert.ErrorContains(t, err, "replica a: unreachable\nreplica b: unreachable")
	_, _, err = Survey(ctx, nil, replicas(), ask(nil))
	assert.ErrorContains(t, err, "no replica's RethinkDB container runs")
}

// A server is connected as the answering server's own connected_to says,
// whatever server_status still lists.
func TestConnected(t *testing.T) {
	st := func(name string, to map[string]bool) serverStatus {
		s := serverStatus{Name: name}
		s.Network.ConnectedTo = to
		return s
	}
	servers := []serverStatus{
		st("b", map[string]bool{"a": true, "c": false}),
		st("a", map[string]bool{"b": true, "c": false}),
		st("c", map[string]bool{"a": false, "b": false}),
	}
	assert.Check(t, is.DeepEqual(connected("a", servers), []string{"a", "b"}))
	assert.Check(t, is.DeepEqual(connected("c", servers), []string{"c"}))
	assert.Check(t, is.DeepEqual(connected("x", servers), []string{"a", "b", "c"}))
}

// After an emergency repair the lost replicas' servers are cut off and hold
// no table: they are removed from the database and leave the majority's
// count; a server cut off that still holds tables is a member, and down.
func TestRemoved(t *testing.T) {
	reps := replicas("a", "b", "c")
	h := &Health{
		Server:    "dtr_rethinkdb_c",
		Connected: []string{"dtr_rethinkdb_c"},
		Tables: []Table{
			{DB: "dtr2", Name: "tags", ReadyForWrites: true, Servers: []string{"dtr_rethinkdb_c"}},
			{DB: "dtr2", Name: "repositories", ReadyForWrites: false, Servers: []string{"dtr_rethinkdb_b", "dtr_rethinkdb_c"}},
		},
	}
	h.Mark(reps)
	assert.Check(t, is.Contains(reps[0].Removed, "removed from the database: its RethinkDB server dtr_rethinkdb_a is not connected"))
	assert.Check(t, !reps[0].Healthy)
	assert.Check(t, is.Equal(reps[1].Removed, ""), "b still holds a replica of dtr2.repositories")
	assert.Check(t, !reps[1].Healthy)
	c := &dtr.Cluster{Replicas: reps}
	assert.Check(t, is.DeepEqual(c.Quorum(), dtr.Quorum{Replicas: 2, Healthy: 0, Needed: 2, OK: false}))

	// With no table at all, nothing says a server was removed.
	reps = replicas("a", "c")
	(&Health{Server: "dtr_rethinkdb_c", Connected: []string{"dtr_rethinkdb_c"}}).Mark(reps)
	assert.Check(t, is.Equal(reps[0].Removed, ""))
}

// Views that see as many servers are told apart by the tables that take
// writes there, then by whose RethinkDB is still on dtr-ol.
func TestSurveyTies(t *testing.T) {
	reps := replicas("a", "b", "c")
	reps[2].Containers[0].Networks = []string{"dtr-ol"}
	alone := func(id string, writable bool) *Health {
		return &Health{Server: "dtr_rethinkdb_" + id, Connected: []string{"dtr_rethinkdb_" + id},
			Tables: []Table{{DB: "dtr2", Name: "tags", ReadyForWrites: writable, Servers: []string{"dtr_rethinkdb_" + id}}}}
	}
	for _, tc := range []struct {
		writable map[string]bool
		want     string
	}{
		{map[string]bool{}, "c"},          // on dtr-ol
		{map[string]bool{"b": true}, "b"}, // repaired
		{map[string]bool{"a": true, "c": true}, "c"},
	} {
		h, from, err := Survey(context.Background(), nil, reps, func(_ context.Context, rep *dtr.Replica) (*Health, error) {
			return alone(rep.ID, tc.writable[rep.ID]), nil
		})
		assert.NilError(t, err)
		assert.Check(t, is.Equal(from.ID, tc.want))
		assert.Check(t, is.Equal(h.Server, "dtr_rethinkdb_"+tc.want))
	}
}
