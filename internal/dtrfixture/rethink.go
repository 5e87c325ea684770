package dtrfixture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// What the fixture reads of RethinkDB's system tables.
type (
	tableConfig struct {
		DB     string `rethinkdb:"db"`
		Name   string `rethinkdb:"name"`
		Shards []struct {
			Replicas []string `rethinkdb:"replicas"`
		} `rethinkdb:"shards"`
	}
	tableStatus struct {
		DB     string `rethinkdb:"db"`
		Name   string `rethinkdb:"name"`
		Status struct {
			ReadyForWrites   bool `rethinkdb:"ready_for_writes"`
			AllReplicasReady bool `rethinkdb:"all_replicas_ready"`
		} `rethinkdb:"status"`
	}
)

var systemDB = r.DB("rethinkdb")

// poll calls f every 100 ms until it reports done, an error other than
// "not yet" (f's own), or ctx ends; then it returns f's last error.
func poll(ctx context.Context, f func(ctx context.Context) (done bool, err error)) error {
	for {
		done, err := f(ctx)
		if done {
			return err
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitJoined waits until the first replica's server sees every replica's
// server connected: the others join it as they start, and a test that
// writes before would find its table on fewer servers than it thinks.
func (c *Cluster) waitJoined(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	first := c.Replicas[0]
	sess, err := c.dial(first)
	if err != nil {
		return fmt.Errorf("connecting to the RethinkDB of replica %s: %w", first.ID, err)
	}
	defer sess.Close()
	var names []string
	err = poll(ctx, func(ctx context.Context) (bool, error) {
		names = nil
		if err := systemDB.Table("server_status").Field("name").ReadAll(&names, sess, r.RunOpts{Context: ctx}); err != nil {
			return false, err
		}
		return len(names) == len(c.Replicas), nil
	})
	if err != nil || len(names) != len(c.Replicas) {
		var logs []string
		for _, rep := range c.Replicas[1:] {
			logs = append(logs, rep.Containers["rethinkdb"]+": "+c.logs(ctx, rep.Containers["rethinkdb"]))
		}
		return fmt.Errorf("the RethinkDB servers did not all join %s: it sees %v (%v); logs:\n%s",
			first.Containers["rethinkdb"], names, err, strings.Join(logs, "\n"))
	}
	return nil
}

// runningServers are the server names of the replicas whose RethinkDB
// container runs and is on dtr-ol: the servers a connected one should see.
func (c *Cluster) runningServers(ctx context.Context) []string {
	c.mu.Lock()
	off := maps.Clone(c.disconnected)
	c.mu.Unlock()
	var names []string
	for _, rep := range c.Replicas {
		if off[rep.ID] {
			continue
		}
		if st, err := c.Client.ContainerInspect(ctx, rep.Containers["rethinkdb"]); err == nil && st.State.Running {
			names = append(names, serverName(rep.ID))
		}
	}
	return names
}

// waitTables waits, after a replica's RethinkDB started or came back on
// dtr-ol, until it sees the other running servers and every table it can
// serve is ready for writes: a table whose replicas are mostly on running
// servers. The server answers a TLS handshake before it has loaded its
// tables or found its peers.
func (c *Cluster) waitTables(rep *Replica) error {
	ctx, cancel := context.WithTimeout(context.Background(), tablesTimeout)
	defer cancel()
	want := c.runningServers(ctx)
	if c.isDisconnected(rep.ID) {
		want = []string{serverName(rep.ID)}
	}
	sess, err := c.dial(rep)
	if err != nil {
		return fmt.Errorf("connecting to the RethinkDB of replica %s: %w", rep.ID, err)
	}
	defer sess.Close()
	began := time.Now()
	var seen, waiting []string
	joined := false
	err = poll(ctx, func(ctx context.Context) (bool, error) {
		seen = nil
		if err := systemDB.Table("server_status").Field("name").ReadAll(&seen, sess, r.RunOpts{Context: ctx}); err != nil {
			return false, err
		}
		for _, name := range want {
			if !slices.Contains(seen, name) {
				return false, nil
			}
		}
		if !joined {
			joined = true
			debugf("%s sees %d servers after %s", rep.Containers["rethinkdb"], len(seen), time.Since(began))
		}
		var err error
		waiting, err = unreadyTables(ctx, sess, seen)
		return err == nil && len(waiting) == 0, err
	})
	if err != nil {
		return fmt.Errorf("the RethinkDB of replica %s: sees servers %v of %v, tables not ready for writes %v: %w", rep.ID, seen, want, waiting, err)
	}
	debugf("%s: tables ready after %s", rep.Containers["rethinkdb"], time.Since(began))
	return nil
}

// unreadyTables are the tables not ready for writes although most of their
// replicas are on the connected servers.
func unreadyTables(ctx context.Context, sess *r.Session, connected []string) ([]string, error) {
	var configs []tableConfig
	if err := systemDB.Table("table_config").ReadAll(&configs, sess, r.RunOpts{Context: ctx}); err != nil {
		return nil, err
	}
	var statuses []tableStatus
	if err := systemDB.Table("table_status").ReadAll(&statuses, sess, r.RunOpts{Context: ctx}); err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, st := range statuses {
		ready[st.DB+"."+st.Name] = st.Status.ReadyForWrites
	}
	var out []string
	for _, cfg := range configs {
		var replicas []string
		for _, sh := range cfg.Shards {
			for _, s := range sh.Replicas {
				if !slices.Contains(replicas, s) {
					replicas = append(replicas, s)
				}
			}
		}
		up := 0
		for _, s := range replicas {
			if slices.Contains(connected, s) {
				up++
			}
		}
		if name := cfg.DB + "." + cfg.Name; 2*up > len(replicas) && !ready[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Replicate makes every table of every database but the system one a table
// of every replica (one shard, as many replicas as the cluster has), as
// DTR's join does, and waits until every replica holds all of it. Tests
// that seed data through Connect and then stop, kill or disconnect replicas
// call it: table_create puts a table on one server, whichever RethinkDB
// picks. It goes through the first replica whose RethinkDB answers; every
// replica's must run.
func (c *Cluster) Replicate(t TB) {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), tablesTimeout)
	defer cancel()
	var sess *r.Session
	var errs []error
	for _, rep := range c.Replicas {
		s, err := c.dial(rep)
		if err == nil {
			sess = s
			break
		}
		errs = append(errs, err)
	}
	if sess == nil {
		t.Fatalf("dtrfixture: Replicate: no RethinkDB answers: %v", errors.Join(errs...))
	}
	defer sess.Close()
	var dbs []string
	if err := r.DBList().ReadAll(&dbs, sess, r.RunOpts{Context: ctx}); err != nil {
		t.Fatalf("dtrfixture: Replicate: %v", err)
	}
	n := 0
	var reconfigured []string
	for _, db := range dbs {
		if db == "rethinkdb" {
			continue
		}
		var tables []string
		if err := r.DB(db).TableList().ReadAll(&tables, sess, r.RunOpts{Context: ctx}); err != nil {
			t.Fatalf("dtrfixture: Replicate: tables of %s: %v", db, err)
		}
		if len(tables) == 0 {
			continue
		}
		opts := r.ReconfigureOpts{Shards: 1, Replicas: len(c.Replicas)}
		if _, err := r.DB(db).Reconfigure(opts).RunWrite(sess, r.RunOpts{Context: ctx}); err != nil {
			t.Fatalf("dtrfixture: Replicate: reconfiguring the tables of %s to %d replicas: %v", db, len(c.Replicas), err)
		}
		n += len(tables)
		reconfigured = append(reconfigured, db)
	}
	for _, db := range reconfigured {
		wait := r.WaitOpts{WaitFor: "all_replicas_ready", Timeout: max(int(time.Until(deadline(ctx)).Seconds()), 1)}
		if _, err := r.DB(db).Wait(wait).RunWrite(sess, r.RunOpts{Context: ctx}); err != nil {
			var statuses []tableStatus
			systemDB.Table("table_status").ReadAll(&statuses, sess)
			var late []string
			for _, st := range statuses {
				if !st.Status.AllReplicasReady {
					late = append(late, st.DB+"."+st.Name)
				}
			}
			t.Fatalf("dtrfixture: Replicate: the tables of %s are not on all %d replicas after %s (not yet: %v): %v",
				db, len(c.Replicas), time.Since(began).Round(time.Millisecond), late, err)
		}
	}
	debugf("replicated %d tables to %d replicas in %s", n, len(c.Replicas), time.Since(began))
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(tablesTimeout)
	}
	return d
}

func (c *Cluster) isDisconnected(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.disconnected[id]
}

// Disconnect takes a replica's RethinkDB container off dtr-ol (docker
// network disconnect), as when its node is cut off: the container keeps
// running, so DTR's containers look as they did, while the servers on
// either side lose each other within seconds. Its RethinkAddr does not
// answer until Reconnect.
func (c *Cluster) Disconnect(t TB, replicaID string) {
	t.Helper()
	rep, _ := c.replica(t, replicaID, []string{"rethinkdb"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	name := rep.Containers["rethinkdb"]
	if err := c.Client.NetworkDisconnect(ctx, networkName, name, true); err != nil {
		t.Fatalf("dtrfixture: disconnecting %s from %s: %v", name, networkName, err)
	}
	c.mu.Lock()
	if c.disconnected == nil {
		c.disconnected = map[string]bool{}
	}
	c.disconnected[replicaID] = true
	c.mu.Unlock()
	debugf("disconnected %s", name)
}

// Reconnect puts a replica's RethinkDB back on dtr-ol, under its name and
// at its address, and waits until it answers on RethinkAddr again, has
// found the other running servers, and the tables it can serve are ready
// for writes.
func (c *Cluster) Reconnect(t TB, replicaID string) {
	t.Helper()
	rep, _ := c.replica(t, replicaID, []string{"rethinkdb"})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	name := rep.Containers["rethinkdb"]
	if err := c.Client.NetworkConnect(ctx, networkName, name, c.endpoint(rep, "rethinkdb")); err != nil {
		t.Fatalf("dtrfixture: connecting %s to %s again: %v", name, networkName, err)
	}
	c.mu.Lock()
	delete(c.disconnected, replicaID)
	c.mu.Unlock()
	if err := c.waitRethink(ctx, rep); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if err := c.waitTables(rep); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("reconnected %s", name)
}

// WaitMajorityLost waits until a replica's RethinkDB reports no table ready
// for writes (table_status), as a server cut off from most of its tables'
// replicas does within seconds, and returns how many tables it reports. It
// fails the test if a table still takes writes after tablesTimeout.
func (c *Cluster) WaitMajorityLost(t TB, replicaID string) int {
	t.Helper()
	rep, _ := c.replica(t, replicaID, []string{"rethinkdb"})
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), tablesTimeout)
	defer cancel()
	sess, err := c.dial(rep)
	if err != nil {
		t.Fatalf("dtrfixture: connecting to the RethinkDB of replica %s: %v", replicaID, err)
	}
	defer sess.Close()
	var statuses []tableStatus
	var writable []string
	err = poll(ctx, func(ctx context.Context) (bool, error) {
		statuses, writable = nil, nil
		if err := systemDB.Table("table_status").ReadAll(&statuses, sess, r.RunOpts{Context: ctx}); err != nil {
			return false, err
		}
		for _, st := range statuses {
			if st.Status.ReadyForWrites {
				writable = append(writable, st.DB+"."+st.Name)
			}
		}
		return len(writable) == 0, nil
	})
	if err != nil || len(writable) > 0 {
		t.Fatalf("dtrfixture: the RethinkDB of replica %s still takes writes on %v after %s: %v",
			replicaID, writable, time.Since(began).Round(time.Millisecond), err)
	}
	debugf("majority lost on %s (%d tables) after %s", replicaID, len(statuses), time.Since(began))
	return len(statuses)
}
