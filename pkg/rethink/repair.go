package rethink

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// The emergency repair of a table whose majority of replicas is lost, and
// the reconfiguring that follows it (pkg/repair).

// EmergencyRepair reverts a table to the replicas this server can reach
// (reconfigure with emergency_repair "unsafe_rollback"): writes the lost
// replicas took and the reachable ones never saw are lost. A table that
// needs no repair (repaired already) is not an error: a repair killed
// halfway is run again.
func (s *Session) EmergencyRepair(ctx context.Context, t TableRef) error {
	var res map[string]any
	err := s.one(ctx, r.DB(t.DB).Table(t.Table).Reconfigure(r.ReconfigureOpts{EmergencyRepair: "unsafe_rollback"}), &res)
	if err != nil && strings.Contains(err.Error(), "doesn't need to be repaired") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("emergency repair of %s: %w", t, err)
	}
	return nil
}

// SetReplicas gives a table n replicas on as many servers, keeping its
// number of shards; RethinkDB chooses the servers among those connected.
func (s *Session) SetReplicas(ctx context.Context, t TableRef, n int) error {
	var cfg struct {
		Shards []any `json:"shards"`
	}
	tbl := r.DB(t.DB).Table(t.Table)
	if err := s.one(ctx, tbl.Config(), &cfg); err != nil {
		return fmt.Errorf("reading the configuration of %s: %w", t, err)
	}
	var res map[string]any
	if err := s.one(ctx, tbl.Reconfigure(r.ReconfigureOpts{Shards: max(len(cfg.Shards), 1), Replicas: n}), &res); err != nil {
		return fmt.Errorf("giving %s %d replicas: %w", t, n, err)
	}
	return nil
}

// Readiness a table is waited for (table.wait's wait_for).
const (
	ReadyForWrites   = "ready_for_writes"
	AllReplicasReady = "all_replicas_ready"
)

// Wait waits until a table is ready (what: ReadyForWrites or
// AllReplicasReady), for at most within.
func (s *Session) Wait(ctx context.Context, t TableRef, what string, within time.Duration) error {
	var res map[string]any
	secs := max(int(within.Round(time.Second)/time.Second), 1)
	if err := s.one(ctx, r.DB(t.DB).Table(t.Table).Wait(r.WaitOpts{WaitFor: what, Timeout: secs}), &res); err != nil {
		return fmt.Errorf("waiting for %s to be %s: %w", t, strings.ReplaceAll(what, "_", " "), err)
	}
	return nil
}

// Readiness is a table's readiness as the server sees it (table_status):
// the servers of its replicas, and those it cannot reach.
type Readiness struct {
	ForOutdatedReads bool
	ForReads         bool
	ForWrites        bool
	AllReplicas      bool
	// Servers hold a replica of it, sorted; Unreachable are those of them
	// the server reports disconnected.
	Servers     []string
	Unreachable []string
}

// Readiness reads every table's readiness (table_status), RethinkDB's own
// tables included, which answers on any server whatever the cluster's
// state.
func (s *Session) Readiness(ctx context.Context) (map[TableRef]Readiness, error) {
	var tables []struct {
		DB     string `json:"db"`
		Name   string `json:"name"`
		Shards []struct {
			Replicas []struct {
				Server string `json:"server"`
				State  string `json:"state"`
			} `json:"replicas"`
		} `json:"shards"`
		Status struct {
			AllReplicasReady      bool `json:"all_replicas_ready"`
			ReadyForOutdatedReads bool `json:"ready_for_outdated_reads"`
			ReadyForReads         bool `json:"ready_for_reads"`
			ReadyForWrites        bool `json:"ready_for_writes"`
		} `json:"status"`
	}
	if err := s.System(ctx, "table_status", &tables); err != nil {
		return nil, err
	}
	out := make(map[TableRef]Readiness, len(tables))
	for _, t := range tables {
		rd := Readiness{ForOutdatedReads: t.Status.ReadyForOutdatedReads, ForReads: t.Status.ReadyForReads,
			ForWrites: t.Status.ReadyForWrites, AllReplicas: t.Status.AllReplicasReady, Servers: []string{}}
		for _, sh := range t.Shards {
			for _, rep := range sh.Replicas {
				if !slices.Contains(rd.Servers, rep.Server) {
					rd.Servers = append(rd.Servers, rep.Server)
				}
				if rep.State == "disconnected" && !slices.Contains(rd.Unreachable, rep.Server) {
					rd.Unreachable = append(rd.Unreachable, rep.Server)
				}
			}
		}
		sort.Strings(rd.Servers)
		sort.Strings(rd.Unreachable)
		out[TableRef{DB: t.DB, Table: t.Name}] = rd
	}
	return out, nil
}
