// Package dbhealth is RethinkDB's own view of a DTR's health, as one of
// its servers sees it: the servers it sees connected, each table's
// readiness and the cluster's current issues. A replica's containers can
// all run while the database has lost its majority and no table takes
// writes: this is what says so. It is read next to the database (the
// database helper's session) and judged here against the replicas the
// Docker API shows.
package dbhealth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// Health is one server's view of the cluster.
type Health struct {
	// Server is the server that answered.
	Server string `json:"server"`
	// Connected are the servers it sees connected, itself included, sorted.
	Connected []string `json:"connectedServers"`
	// Tables are the tables of every database but RethinkDB's own, sorted.
	Tables []Table `json:"tables"`
	// Issues are RethinkDB's current_issues.
	Issues []Issue `json:"issues"`
}

// Table is a table's readiness (table_status), and the servers that hold
// a replica of it.
type Table struct {
	DB                    string   `json:"db"`
	Name                  string   `json:"table"`
	ReadyForOutdatedReads bool     `json:"readyForOutdatedReads"`
	ReadyForReads         bool     `json:"readyForReads"`
	ReadyForWrites        bool     `json:"readyForWrites"`
	AllReplicasReady      bool     `json:"allReplicasReady"`
	Servers               []string `json:"servers"`
}

func (t Table) String() string { return t.DB + "." + t.Name }

// Issue is one of current_issues.
type Issue struct {
	Type        string `json:"type"`
	Critical    bool   `json:"critical"`
	Description string `json:"description"`
}

// Read reads the view of the server sess is connected to. The system
// tables answer on any server, whatever the cluster's state.
func Read(ctx context.Context, sess *rethink.Session) (*Health, error) {
	name, err := sess.ServerName()
	if err != nil {
		return nil, err
	}
	h := &Health{Server: name, Connected: []string{}, Tables: []Table{}, Issues: []Issue{}}
	var servers []serverStatus
	if err := sess.System(ctx, "server_status", &servers); err != nil {
		return nil, err
	}
	h.Connected = connected(name, servers)
	ready, err := sess.Readiness(ctx)
	if err != nil {
		return nil, err
	}
	for ref, rd := range ready {
		if ref.DB == rethink.SystemDB {
			continue
		}
		h.Tables = append(h.Tables, Table{DB: ref.DB, Name: ref.Table, ReadyForOutdatedReads: rd.ForOutdatedReads, ReadyForReads: rd.ForReads,
			ReadyForWrites: rd.ForWrites, AllReplicasReady: rd.AllReplicas, Servers: rd.Servers})
	}
	sort.Slice(h.Tables, func(i, j int) bool { return h.Tables[i].String() < h.Tables[j].String() })
	if err := sess.System(ctx, "current_issues", &h.Issues); err != nil {
		return nil, err
	}
	sort.SliceStable(h.Issues, func(i, j int) bool { return h.Issues[i].Critical && !h.Issues[j].Critical })
	return h, nil
}

// serverStatus is what Read takes of a server_status document.
type serverStatus struct {
	Name    string `json:"name"`
	Network struct {
		ConnectedTo map[string]bool `json:"connected_to"`
	} `json:"network"`
}

// connected are the servers the server named self sees connected: itself,
// and those its own network.connected_to says true of. server_status
// still lists a server for a while after the connection to it is cut;
// connected_to says at once. Without self's document, every listed one.
func connected(self string, servers []serverStatus) []string {
	out := []string{}
	for _, s := range servers {
		if s.Name != self {
			continue
		}
		out = append(out, self)
		for name, up := range s.Network.ConnectedTo {
			if up {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	for _, s := range servers {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// Writable counts the tables that take writes.
func (h *Health) Writable() int { return len(h.Tables) - len(h.Unwritable()) }

// Unwritable are the tables that cannot take writes.
func (h *Health) Unwritable() []Table {
	var out []Table
	for _, t := range h.Tables {
		if !t.ReadyForWrites {
			out = append(out, t)
		}
	}
	return out
}

// Problems says why the database counts replica rep as unhealthy, as the
// server that answered sees it: its server is not connected, or tables it
// holds a replica of cannot take writes. None for a healthy one.
func (h *Health) Problems(rep *dtr.Replica) []string {
	name := dtr.RethinkServer(rep.ID)
	var out []string
	if !slices.Contains(h.Connected, name) {
		out = append(out, fmt.Sprintf("its RethinkDB server %s is not connected to %s", name, h.Server))
	}
	var held []string
	for _, t := range h.Unwritable() {
		if slices.Contains(t.Servers, name) {
			held = append(held, t.String())
		}
	}
	if len(held) > 0 {
		out = append(out, fmt.Sprintf("%s cannot take writes", human.List(held, 3)))
	}
	return out
}

// Removed says why rep is no longer part of the database in h's view: its
// server is cut off and no table has a replica on it, as an emergency
// repair leaves the lost replicas. "" for a member.
func (h *Health) Removed(rep *dtr.Replica) string {
	name := dtr.RethinkServer(rep.ID)
	if len(h.Tables) == 0 || slices.Contains(h.Connected, name) {
		return ""
	}
	for _, t := range h.Tables {
		if slices.Contains(t.Servers, name) {
			return ""
		}
	}
	return fmt.Sprintf("removed from the database: its RethinkDB server %s is not connected to %s and holds no table's replica (as an emergency repair leaves a lost replica): remove it (docker/dtr remove) and join a new one", name, h.Server)
}

// Mark makes each replica with Problems in h's view unhealthy, with
// those problems after its containers', and each replica Removed from
// the database neither healthy nor counted.
func (h *Health) Mark(replicas []*dtr.Replica) {
	for _, rep := range replicas {
		if why := h.Removed(rep); why != "" {
			rep.Healthy, rep.Removed = false, why
			rep.Problems = append(rep.Problems, why)
			continue
		}
		if p := h.Problems(rep); len(p) > 0 {
			rep.Healthy = false
			rep.Problems = append(rep.Problems, p...)
		}
	}
}

// Sees counts the replicas whose servers h sees connected.
func (h *Health) Sees(replicas []*dtr.Replica) int {
	n := 0
	for _, rep := range replicas {
		if slices.Contains(h.Connected, dtr.RethinkServer(rep.ID)) {
			n++
		}
	}
	return n
}

// Ask asks the server of a replica for its view.
type Ask func(ctx context.Context, rep *dtr.Replica) (*Health, error)

// wider says a's view (of replica ra) is to be believed over b's (of rb):
// it sees more of the replicas' servers; or as many, and more tables take
// writes there (a repaired survivor, beside servers cut off that still
// wait for their majority); or as many again, and ra's RethinkDB is on
// DTR's network where rb's is not (rb's was cut off).
func wider(a *Health, ra *dtr.Replica, b *Health, rb *dtr.Replica, replicas []*dtr.Replica) bool {
	if sa, sb := a.Sees(replicas), b.Sees(replicas); sa != sb {
		return sa > sb
	}
	if wa, wb := a.Writable(), b.Writable(); wa != wb {
		return wa > wb
	}
	return ra.OnNetwork() && !rb.OnNetwork()
}

// Survey asks the server of first (or of the first replica whose
// RethinkDB container runs) for its view. Where it cannot be asked, or
// sees no majority of the replicas connected (a server cut off from the
// others sees only itself, where another may see the rest), the servers
// of the other replicas whose RethinkDB runs are asked, all at once, so
// that a bad day costs one more wait, not one per replica. It returns the
// view that sees the most (the first, in that order, of equals) and whose
// it is; when none answers, every reason.
func Survey(ctx context.Context, first *dtr.Replica, replicas []*dtr.Replica, ask Ask) (*Health, *dtr.Replica, error) {
	var order []*dtr.Replica
	if first != nil {
		order = append(order, first)
	}
	for _, rep := range replicas {
		if c := rep.Container("rethinkdb"); rep != first && c != nil && c.State == "running" {
			order = append(order, rep)
		}
	}
	if len(order) == 0 {
		return nil, nil, errors.New("no replica's RethinkDB container runs")
	}
	views := make([]*Health, len(order))
	errs := make([]error, len(order))
	views[0], errs[0] = ask(ctx, order[0])
	needed := len(replicas)/2 + 1
	if errs[0] != nil || views[0].Sees(replicas) < needed {
		var wg sync.WaitGroup
		for i := 1; i < len(order); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				views[i], errs[i] = ask(ctx, order[i])
			}()
		}
		wg.Wait()
	}
	var best *Health
	var from *dtr.Replica
	var failed []error
	for i, h := range views {
		switch {
		case errs[i] != nil:
			failed = append(failed, fmt.Errorf("replica %s: %w", order[i].ID, errs[i]))
		case h != nil && (best == nil || wider(h, order[i], best, from, replicas)):
			best, from = h, order[i]
		}
	}
	if best == nil {
		return nil, nil, errors.Join(failed...)
	}
	return best, from, nil
}
