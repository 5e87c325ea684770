package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Issue 22: a restore stops DTR's containers all at once, with one bound,
// and starts them again in DTR's order. Two of the replica's eight other
// containers ignore SIGTERM, as a hung component does: the engine is
// asked to stop every container before it kills the first of those two
// (the restore waits out one timeout, not one per container), the
// progress names the two it killed, and the starts come rank by rank,
// nginx last. The test reads the engine's events, not the clock.
//
// A run killed with SIGKILL while those stops are under way leaves its
// journal naming every container (it is written before the first stop):
// --undo then starts them all again.
func TestRestoreStopsAtOnce(t *testing.T) {
	cfg := dockerConfig(t)
	others := []string{"api", "garant", "jobrunner", "nginx", "notary-server", "notary-signer", "registry", "scanningstore"}
	slow := []string{"api", "jobrunner"}
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: append([]string{"rethinkdb"}, others...), IgnoreSIGTERM: slow})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	dtrtest.Seed(t, driver)
	before := dtrtest.Snapshot(t, driver)
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-o", backup)
	assert.Assert(t, res.code == 0, res.stderr)

	since := time.Now()
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", backup)
	assert.Assert(t, res.code == 0, res.stderr)
	evs := containerEvents(t, c, rep, since)
	t.Logf("engine events: %v", evs)

	// Every stop began before the first kill.
	var terms, kills []string
	lastTerm, firstKill := -1, len(evs)
	for i, e := range evs {
		switch {
		case e.action == "kill" && e.signal == "15":
			terms, lastTerm = append(terms, e.comp), i
		case e.action == "kill" && e.signal == "9":
			kills, firstKill = append(kills, e.comp), min(firstKill, i)
		}
	}
	slices.Sort(terms)
	slices.Sort(kills)
	assert.Check(t, is.DeepEqual(terms, others))
	assert.Check(t, is.DeepEqual(kills, slow))
	assert.Check(t, lastTerm < firstKill, "a container was sent SIGTERM only after another was killed: the stops waited one after another (events %v)", evs)

	// The progress names the two that were killed, and only them.
	for _, comp := range others {
		name := "dtr-" + comp + "-" + rep.ID
		killed := "stopped " + name + ": it did not exit within 30s of SIGTERM, so the engine killed it (SIGKILL)"
		if slices.Contains(slow, comp) {
			assert.Check(t, is.Contains(res.stderr, killed))
		} else {
			assert.Check(t, is.Contains(res.stderr, "stopped "+name+"\n"))
		}
		assert.Check(t, is.Contains(res.stderr, "started "+name+" again"))
		assertRunning(t, c, name)
	}
	assert.Check(t, is.Equal(strings.Count(res.stderr, "SIGKILL"), len(slow)), res.stderr)
	// The restore returned once the api reported healthy again (the
	// fixture's checks it every second): a backup right after finds a
	// healthy replica.
	api, err := c.Client.ContainerInspect(context.Background(), "dtr-api-"+rep.ID)
	assert.NilError(t, err)
	assert.Check(t, api.State.Health != nil && api.State.Health.Status == "healthy", "the restore returned while dtr-api-%s was %+v", rep.ID, api.State.Health)

	// Started rank by rank (pkg/dtr's order), RethinkDB never stopped.
	ranks := [][]string{{"garant", "notary-signer", "registry", "scanningstore"}, {"api", "jobrunner", "notary-server"}, {"nginx"}}
	rank := func(comp string) int {
		return slices.IndexFunc(ranks, func(r []string) bool { return slices.Contains(r, comp) })
	}
	var started []string
	for _, e := range evs {
		if e.action == "start" {
			started = append(started, e.comp)
		}
	}
	assert.Check(t, is.Len(started, len(others)), "started %v", started)
	assert.Check(t, slices.IsSortedFunc(started, func(a, b string) int { return rank(a) - rank(b) }), "started in the order %v", started)
	assert.Check(t, is.DeepEqual(dtrtest.Snapshot(t, driver), before))
	c.WaitReady(t, rep.ID)

	t.Run("killed while stopping, then --undo", func(t *testing.T) {
		rig := &faultRig{cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), c: c, rep: rep,
			command: []string{"backup", "restore", "--force"}, backup: backup}
		b := rig.startRestore(t, t.TempDir(), runOptions{viaDocker: true})
		// Killed once a container that stops on SIGTERM has stopped, while
		// the two that ignore it are still waited for.
		fast := "stopped dtr-registry-" + rep.ID
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(b.stderr.String(), fast) {
			select {
			case <-b.done:
				t.Fatalf("the restore ended (%v) before it stopped anything: %s", b.err, b.stderr)
			default:
			}
			assert.Assert(t, time.Now().Before(deadline), "nothing stopped; stderr: %s", b.stderr)
			time.Sleep(time.Millisecond)
		}
		b.killPlugin(t)
		assert.Assert(t, !strings.Contains(b.stderr.String(), "SIGKILL"), "the kill came after the stops had ended: %s", b.stderr)

		res := docker(t, cfg, nil, "dtr", "backup", "restore", "--undo", "--replica-id", rep.ID)
		assert.Assert(t, res.code == 0, res.stderr)
		for _, comp := range others {
			assertRunning(t, c, "dtr-"+comp+"-"+rep.ID)
		}
		assert.Check(t, is.DeepEqual(dtrtest.Snapshot(t, driver), before))
		statusClear(t, rig)
		assertNoHelpers(t, c)
	})
}

// containerEvent is one engine event of a replica's container.
type containerEvent struct {
	action, comp, signal string
}

func (e containerEvent) String() string {
	if e.signal != "" {
		return e.action + "(" + e.signal + ") " + e.comp
	}
	return e.action + " " + e.comp
}

// containerEvents are the engine's stop, kill and start events of rep's
// containers since since, in order.
func containerEvents(t *testing.T, c *dtrfixture.Cluster, rep *dtrfixture.Replica, since time.Time) []containerEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	args := filters.NewArgs(filters.Arg("type", "container"))
	comps := map[string]string{}
	for comp, name := range rep.Containers {
		args.Add("container", name)
		comps[name] = comp
	}
	for _, a := range []string{"kill", "stop", "start"} {
		args.Add("event", a)
	}
	msgs, errs := c.Client.Events(ctx, events.ListOptions{Since: ts(since), Until: ts(time.Now()), Filters: args})
	var out []containerEvent
	for {
		select {
		case m := <-msgs:
			out = append(out, containerEvent{action: string(m.Action), comp: comps[m.Actor.Attributes["name"]], signal: m.Actor.Attributes["signal"]})
		case err := <-errs:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("reading engine events: %v", err)
			}
			return out
		}
	}
}
