// Package repair is the emergency repair of a DTR whose RethinkDB has lost
// its majority, from the replica that survives, without a backup: what
// docker/dtr emergency-repair does. Each of DTR's tables that cannot take
// writes is reverted to the replicas the surviving server reaches
// (RethinkDB's reconfigure with emergency_repair "unsafe_rollback"), and
// every table then keeps only those replicas, so that the lost servers
// are no longer part of the database. Writes that only the lost replicas
// took are gone: a backup of the survivor (outdated) is taken first.
//
// MakePlan says what would change from one server's view (dbhealth), Run
// plans, asks, records the run in the restore journal, changes and checks.
package repair

import (
	"slices"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// What a plan does to a table.
const (
	// ActionNone leaves a table as it is: it takes writes, and every
	// replica's server is reachable.
	ActionNone = "none"
	// ActionRepair reverts a table that takes no writes to its reachable
	// replicas (emergency repair), then keeps only those.
	ActionRepair = "repair"
	// ActionDrop keeps only the reachable replicas of a table that takes
	// writes but still lists replicas on lost servers.
	ActionDrop = "drop unreachable replicas"
	// ActionElect waits for a table that takes no writes while a majority
	// of its replicas is reachable: it is electing a primary, as after
	// its primary's server was cut off, and takes writes within seconds
	// without a repair (RethinkDB refuses an emergency repair of it).
	// Unreachable replicas are then dropped.
	ActionElect = "wait for its primary"
)

// Table is what the plan does to one table.
type Table struct {
	DB   string `json:"db"`
	Name string `json:"table"`
	// Replicas are the servers holding a replica of it; Unreachable
	// those the surviving server cannot reach, Stays those it can.
	Replicas       []string `json:"replicas"`
	Unreachable    []string `json:"unreachable"`
	Stays          []string `json:"stays"`
	ReadyForWrites bool     `json:"readyForWrites"`
	Action         string   `json:"action"`
}

func (t Table) String() string { return t.DB + "." + t.Name }

// Ref names the table for the database.
func (t Table) Ref() rethink.TableRef { return rethink.TableRef{DB: t.DB, Table: t.Name} }

// Plan is what a repair from one server would change.
type Plan struct {
	// Server is the surviving server the plan is made from, and
	// Connected the servers it reaches (itself included).
	Server    string   `json:"server"`
	Connected []string `json:"connectedServers"`
	Tables    []Table  `json:"tables"`
}

// MakePlan plans the repair of DTR's tables from the view of the server
// that answered (h): the other databases are not DTR's to change.
func MakePlan(h *dbhealth.Health) *Plan {
	p := &Plan{Server: h.Server, Connected: h.Connected, Tables: []Table{}}
	for _, ht := range h.Tables {
		if !archive.IsDTRDatabase(ht.DB) {
			continue
		}
		t := Table{DB: ht.DB, Name: ht.Name, Replicas: ht.Servers, Unreachable: []string{}, Stays: []string{}, ReadyForWrites: ht.ReadyForWrites, Action: ActionNone}
		for _, s := range ht.Servers {
			if slices.Contains(h.Connected, s) {
				t.Stays = append(t.Stays, s)
			} else {
				t.Unreachable = append(t.Unreachable, s)
			}
		}
		switch {
		case !t.ReadyForWrites && 2*len(t.Stays) <= len(t.Replicas):
			t.Action = ActionRepair
		case !t.ReadyForWrites:
			t.Action = ActionElect
		case len(t.Unreachable) > 0:
			t.Action = ActionDrop
		}
		p.Tables = append(p.Tables, t)
	}
	return p
}

// Lost are the tables that take no writes because a majority of their
// replicas is unreachable: what the repair is for. (Servers lists the
// replicas of every shard; DTR's tables have one.)
func (p *Plan) Lost() []Table { return p.with(func(t Table) bool { return t.Action == ActionRepair }) }

// Changes are the tables the repair changes.
func (p *Plan) Changes() []Table { return p.with(func(t Table) bool { return t.Action != ActionNone }) }

// Electing are the tables that take no writes while a majority of their
// replicas is reachable.
func (p *Plan) Electing() []Table {
	return p.with(func(t Table) bool { return t.Action == ActionElect })
}

// Stranded are the tables that take no writes and have no replica on a
// server the survivor reaches: a repair from it cannot bring them back.
func (p *Plan) Stranded() []Table {
	return p.with(func(t Table) bool { return t.Action == ActionRepair && len(t.Stays) == 0 })
}

func (p *Plan) with(keep func(Table) bool) []Table {
	var out []Table
	for _, t := range p.Tables {
		if keep(t) {
			out = append(out, t)
		}
	}
	return out
}

// Names are the tables' names, as db.table.
func Names(ts []Table) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.String())
	}
	return out
}
