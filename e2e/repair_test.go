package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// TestRepair is the majority lost on a real three-server RethinkDB (two
// servers cut off from dtr-ol while every container runs), and the two
// ways the plugin offers then: an outdated backup of what survives, and
// the emergency repair, killed halfway and finished; on a healthy
// cluster, and after the repair, repair refuses.
func TestRepair(t *testing.T) {
	cfg := dockerConfig(t)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	c := dtrfixture.Start(t, dtrfixture.Options{})
	ids := []string{c.Replicas[0].ID, c.Replicas[1].ID, c.Replicas[2].ID}
	survivor := "dtr_rethinkdb_" + ids[2]
	driver := c.Connect(t, ids[2])
	dtrtest.Seed(t, driver)
	c.Replicate(t)
	dir := t.TempDir()

	// Healthy: nothing to repair, and nothing changed.
	configs, data := tableConfigs(t, driver), outdatedSnapshot(t, driver)
	res := docker(t, cfg, nil, "dtr", "repair", "--force")
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "nothing to repair: RethinkDB server dtr_rethinkdb_"))
	assert.Assert(t, is.Contains(res.stderr, "docker dtr status says the database is healthy"))
	assert.DeepEqual(t, tableConfigs(t, driver), configs)
	assert.DeepEqual(t, outdatedSnapshot(t, driver), data)
	assertNoHelpers(t, c)
	entries, _ := os.ReadDir(dir)
	assert.Equal(t, len(entries), 0, "no safety backup of a refused repair")

	// One server cut off sees no majority of its own, while the other two
	// have theirs: a repair from it (--replica-id) would revert the tables
	// to its stale copy. Refused, and nothing changed (a clean-clone CI
	// once caught it going ahead while the others elected primaries).
	c.Disconnect(t, ids[0])
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		for _, st := range tableConfigs(t, driver) {
			if st.AllReplicasReady {
				return poll.Continue("the others still see dtr_rethinkdb_%s", ids[0])
			}
		}
		return poll.Success()
	}, poll.WithTimeout(time.Minute))
	res = docker(t, cfg, nil, "dtr", "repair", "--force", "--replica-id", ids[0])
	assert.Equal(t, res.code, 1, res.stderr)
	// Tables whose primary was on the cut-off server take no writes on
	// the other two until they have elected a new one: refused then too.
	assert.Assert(t, is.Regexp("nothing to repair: RethinkDB server dtr_rethinkdb_("+ids[1]+"|"+ids[2]+") has its majority", res.stderr))
	// The others answer table_config without shards while they elect the
	// Raft leader the cut-off server held: compare once every table's
	// configuration reads again.
	var now map[string]tableState
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		now = tableConfigs(t, driver)
		for name, st := range now {
			if st.Replicas == nil {
				return poll.Continue("the configuration of %s does not read yet", name)
			}
		}
		return poll.Success()
	}, poll.WithTimeout(time.Minute))
	assert.DeepEqual(t, configsOnly(now), configsOnly(configs))
	c.Reconnect(t, ids[0])

	c.Disconnect(t, ids[0])
	c.Disconnect(t, ids[1])
	assert.Assert(t, c.WaitMajorityLost(t, ids[2]) > 0)
	configs, data = tableConfigs(t, driver), outdatedSnapshot(t, driver)

	// A backup of the survivor is refused, naming --allow-outdated, then
	// taken with it.
	outdated := filepath.Join(dir, "outdated.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--replica-id", ids[2], "-o", outdated)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "backup failed, "+outdated+" was not written: "))
	assert.Assert(t, is.Contains(res.stderr, fmt.Sprintf("%d tables are not ready for reads on RethinkDB server %s (", len(data), survivor)))
	assert.Assert(t, is.Contains(res.stderr, "--allow-outdated"))
	assert.Equal(t, strings.Count(strings.TrimSpace(res.stderr), "\n"), 0, "one line: %s", res.stderr)
	_, err := os.Stat(outdated)
	assert.Assert(t, os.IsNotExist(err))
	assertNoHelpers(t, c)

	res = docker(t, cfg, nil, "dtr", "backup", "create", "--replica-id", ids[2], "--allow-outdated", "-o", outdated)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf("OUTDATED: %d tables read from RethinkDB server %s without their majority", len(data), survivor)))
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", outdated)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Regexp(`(?m)^  Outdated\s+\d+ tables read from RethinkDB server `+survivor+` without their majority`, res.stdout))
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", outdated)
	var rep struct {
		Outdated struct {
			Server string
			Tables []string
		}
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &rep))
	assert.Equal(t, rep.Outdated.Server, survivor)
	assert.DeepEqual(t, rep.Outdated.Tables, sortedKeys(data))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", "--replica-id", ids[2], outdated)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, outdated+": OUTDATED backup: "))
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf("%s: restores: %d tables, ", outdated, len(data))))
	assertNoHelpers(t, c)

	// --dry-run changes nothing.
	res = docker(t, cfg, nil, "dtr", "repair", "--dry-run")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "surviving replica: "+ids[2]))
	assert.Assert(t, is.Contains(res.stdout, "Dry run: a repair from RethinkDB server "+survivor+" (it reaches "+survivor+") would:"))
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf("revert %d tables to the survivor's replicas: writes only the unreachable replicas took are LOST", len(data))))
	assert.Assert(t, is.Regexp(`(?m)^dtr2\.tags\s+no\s+dtr_rethinkdb_\S+, dtr_rethinkdb_\S+\s+`+survivor+`\s+repair$`, res.stdout))
	assert.DeepEqual(t, tableConfigs(t, driver), configs)
	assert.DeepEqual(t, outdatedSnapshot(t, driver), data)
	assertNoHelpers(t, c)

	// Status still reads DTR's storage settings, from the survivor's copy.
	res = docker(t, cfg, nil, "dtr", "status", "--format", "json")
	assert.Equal(t, res.code, 1)
	var st struct {
		Storage struct{ Driver, Error string }
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &st))
	assert.Equal(t, st.Storage.Error, "")
	assert.Equal(t, st.Storage.Driver, "filesystem")

	// A repair killed halfway: status reports it, the next repair
	// finishes it.
	safety := filepath.Join(dir, "survivor.tar")
	cmd := exec.Command(bin, "repair", "--force", "--progress", "plain", "-o", safety)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
	stderr, err := cmd.StderrPipe()
	assert.NilError(t, err)
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var seen []string
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if strings.Contains(lines.Text(), ": reverted to ") {
			assert.NilError(t, cmd.Process.Signal(syscall.SIGKILL))
			break
		}
	}
	cmd.Wait()
	assert.Assert(t, is.Contains(strings.Join(seen, "\n"), ": reverted to "), "%s", strings.Join(seen, "\n"))
	assert.Assert(t, is.Contains(strings.Join(seen, "\n"), "safety backup of the survivor: "+safety))

	res = docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "an emergency repair from replica "+ids[2]+", started "))
	assert.Assert(t, is.Contains(res.stderr, "finish it with: docker dtr repair --replica-id "+ids[2]))
	// Other commands say so too: a restore waits for the repair.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", outdated)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "an emergency repair from replica "+ids[2]))

	began := time.Now()
	res = docker(t, cfg, nil, "dtr", "repair", "--force")
	t.Logf("the repair that finished the killed one took %s", time.Since(began).Round(100*time.Millisecond))
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "finishing the unfinished repair from replica "+ids[2]))
	assert.Assert(t, is.Contains(res.stdout, "finished the interrupted repair: "))
	assert.Assert(t, is.Contains(res.stdout, "safety backup of the survivor: "+safety))
	// The new status, printed by repair: the lost replicas no longer count.
	assert.Assert(t, is.Contains(res.stdout, "1 of 1 replicas healthy, a majority needs 1: OK"))
	assert.Assert(t, is.Contains(res.stdout, "removed from the database: its RethinkDB server dtr_rethinkdb_"+ids[0]))
	assertNoHelpers(t, c)

	// Every table takes writes, holds what the survivor held, and has its
	// replica on the survivor only.
	after := tableConfigs(t, driver)
	for name, cfg := range after {
		assert.DeepEqual(t, cfg.Replicas, []string{survivor})
		assert.Assert(t, cfg.ReadyForWrites, name)
	}
	assert.DeepEqual(t, outdatedSnapshot(t, driver), data)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "after-repair"}).RunWrite(driver)
	assert.NilError(t, err)

	res = docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "Backups use replica "+ids[2]), res.stdout)

	// A backup without --replica-id reads from the survivor, as status
	// says, though the servers the repair left behind keep running: the
	// one with the lowest id sees no majority and refuses; the survivor's
	// server sees more.
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-o", filepath.Join(dir, "after-repair.tar"))
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "replica "+ids[2]+" on node "), res.stdout)
	if slices.Min(ids) != ids[2] {
		assert.Assert(t, is.Contains(res.stderr, "sees more of the cluster ("), res.stderr)
		assert.Assert(t, is.Contains(res.stderr, "backing up from replica "+ids[2]), res.stderr)
	}
	assertNoHelpers(t, c)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", safety)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "verified, OUTDATED"))

	// Nothing left to repair.
	res = docker(t, cfg, nil, "dtr", "repair", "--force")
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "nothing to repair"))

	// An outdated backup's restore says so in its plan, and asks (here:
	// refuses without a terminal and without --force).
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--replica-id", ids[2], outdated)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restore an OUTDATED backup: "))
	assert.Assert(t, is.Contains(res.stdout, "refuse without --force: the backup is outdated"))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--replica-id", ids[2], outdated)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "is an outdated backup: "))
	assertNoHelpers(t, c)

	// A lost server back on dtr-ol joins the survivor's cluster with no
	// table; --replicas 2 gives every table a replica on it.
	c.Reconnect(t, ids[0])
	res = docker(t, cfg, nil, "dtr", "repair", "--force", "--replicas", "2")
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	for name, cfg := range tableConfigs(t, driver) {
		assert.DeepEqual(t, cfg.Replicas, []string{"dtr_rethinkdb_" + ids[0], survivor})
		assert.Assert(t, cfg.AllReplicasReady, name)
	}
}

// tableState is what a test compares of a table's configuration.
type tableState struct {
	Config           any
	Replicas         []string
	ReadyForWrites   bool
	AllReplicasReady bool
}

// tableConfigs reads every DTR table's configuration and readiness from
// the server s is connected to (system tables answer without a majority).
func tableConfigs(t *testing.T, s *r.Session) map[string]tableState {
	t.Helper()
	var cfgs []map[string]any
	cur, err := r.DB("rethinkdb").Table("table_config").Run(s)
	assert.NilError(t, err)
	assert.NilError(t, cur.All(&cfgs))
	var sts []struct {
		DB, Name string
		Status   struct {
			ReadyForWrites   bool `rethinkdb:"ready_for_writes"`
			AllReplicasReady bool `rethinkdb:"all_replicas_ready"`
		}
	}
	cur, err = r.DB("rethinkdb").Table("table_status").Run(s)
	assert.NilError(t, err)
	assert.NilError(t, cur.All(&sts))
	out := map[string]tableState{}
	for _, c := range cfgs {
		name := fmt.Sprint(c["db"], ".", c["name"])
		st := tableState{Config: c}
		// shards is null while the table's Raft leader is unreachable
		// (a clean-clone CI run read it so right after a cut).
		shards, _ := c["shards"].([]any)
		for _, sh := range shards {
			reps, _ := sh.(map[string]any)["replicas"].([]any)
			for _, rep := range reps {
				st.Replicas = append(st.Replicas, rep.(string))
			}
		}
		sort.Strings(st.Replicas)
		for _, s := range sts {
			if s.DB+"."+s.Name == name {
				st.ReadyForWrites, st.AllReplicasReady = s.Status.ReadyForWrites, s.Status.AllReplicasReady
			}
		}
		out[name] = st
	}
	return out
}

// configsOnly are the tables' configurations, without their readiness.
func configsOnly(m map[string]tableState) map[string]any {
	out := map[string]any{}
	for name, st := range m {
		out[name] = st.Config
	}
	return out
}

// outdatedSnapshot reads every document of every DTR table as the server
// s is connected to holds it (read_mode outdated: it answers without a
// majority).
func outdatedSnapshot(t *testing.T, s *r.Session) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, tb := range dtrtest.Tables {
		cur, err := r.DB(tb.DB).Table(tb.Table).OrderBy(r.Asc(tb.PrimaryKey)).Run(s, r.RunOpts{ReadMode: "outdated", TimeFormat: "raw", BinaryFormat: "raw"})
		assert.NilError(t, err)
		var docs []any
		assert.NilError(t, cur.All(&docs))
		out[tb.DB+"."+tb.Table] = docs
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
