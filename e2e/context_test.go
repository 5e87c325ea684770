package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// These tests run the plugin through the Docker CLI against a DTR-shaped
// cluster on the real engine (internal/dtrfixture), reaching RethinkDB only
// the way a user's plugin does: discovery and a database helper container.

// statusJSON is what `docker dtr status --format json` prints.
type statusJSON struct {
	Context string
	Quorum  struct {
		Replicas, Healthy, Needed int
		OK                        bool
	}
	BackupReplica string
	Replicas      []struct {
		ID, Node, Version string
		Healthy           bool
		Problems          []string
		Containers        []struct{ Component, Name, State, Health, Version string }
		ImageStorage      *struct{ Type, Name, Driver string }
	}
	Database struct {
		Server, ReadFrom, Error string
		ServersConnected        int
		ConnectedServers        []string
		Tables                  []struct {
			DB, Table      string
			ReadyForWrites bool
		}
		Issues []struct {
			Type        string
			Critical    bool
			Description string
		}
	}
}

func status(t *testing.T, cfg string) (statusJSON, result) {
	t.Helper()
	res := docker(t, cfg, nil, "dtr", "status", "--format", "json")
	var st statusJSON
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &st), "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	return st, res
}

// helpers lists the plugin's helper containers, running or not.
func helperContainers(t *testing.T, c *dtrfixture.Cluster) []container.Summary {
	t.Helper()
	list, err := c.Client.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind)),
	})
	assert.NilError(t, err)
	return list
}

func assertNoHelpers(t *testing.T, c *dtrfixture.Cluster) {
	t.Helper()
	left := helpersLeft(t, c)
	assert.Equal(t, len(left), 0, "helpers left behind: %v", left)
}

// helpersLeft are the helpers still there a few seconds after a run: a
// helper whose agent exited is removed by the engine (AutoRemove), which
// the plugin does not wait for.
func helpersLeft(t *testing.T, c *dtrfixture.Cluster) []container.Summary {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := helperContainers(t, c)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStatus(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{NoVersionEnv: true}) // the version comes from the image tag
	ids := []string{c.Replicas[0].ID, c.Replicas[1].ID, c.Replicas[2].ID}
	info, err := c.Client.Info(context.Background())
	assert.NilError(t, err)
	// A table on every replica, as DTR's are, for the majority lost below.
	driver := c.Connect(t, ids[2])
	_, err = r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(driver)
	assert.NilError(t, err)
	c.Replicate(t)

	st, res := status(t, cfg)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.DeepEqual(t, st.Quorum, struct {
		Replicas, Healthy, Needed int
		OK                        bool
	}{3, 3, 2, true})
	assert.Equal(t, st.BackupReplica, ids[0], "the healthy replica with the lowest id")
	// RethinkDB's own view, from the backup replica's server.
	assert.Equal(t, st.Database.Error, "")
	assert.Equal(t, st.Database.ReadFrom, ids[0])
	assert.Equal(t, st.Database.Server, "dtr_rethinkdb_"+ids[0])
	assert.Equal(t, st.Database.ServersConnected, 3)
	assert.Equal(t, len(st.Database.Tables), 1)
	assert.Equal(t, st.Database.Tables[0].DB+"."+st.Database.Tables[0].Table, "dtr2.properties")
	assert.Assert(t, st.Database.Tables[0].ReadyForWrites)
	assert.Equal(t, len(st.Database.Issues), 0)
	assert.Equal(t, len(st.Replicas), 3)
	for i, rep := range st.Replicas {
		assert.Equal(t, rep.ID, ids[i])
		assert.Equal(t, rep.Node, info.Name, "a plain engine is the node")
		assert.Equal(t, rep.Version, dtrfixture.DefaultVersion)
		assert.Assert(t, rep.Healthy, "%v", rep.Problems)
		var components []string
		for _, ct := range rep.Containers {
			components = append(components, ct.Component)
			assert.Equal(t, ct.State, "running")
		}
		assert.DeepEqual(t, components, []string{"api", "registry", "rethinkdb"})
		assert.Assert(t, rep.ImageStorage != nil)
		assert.Equal(t, rep.ImageStorage.Name, "dtr-registry-"+rep.ID)
	}

	res = docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "3 of 3 replicas healthy, a majority needs 2: OK"))
	assert.Assert(t, is.Contains(res.stdout, "Database: RethinkDB server dtr_rethinkdb_"+ids[0]+" (replica "+ids[0]+") sees 3 of 3 replicas' servers connected; all 1 tables take writes; no issues."))
	assert.Assert(t, is.Contains(res.stdout, "Backups use replica "+ids[0]))
	assert.Assert(t, is.Regexp(`(?m)^`+ids[1]+`\s+api\s+running\s+healthy\s+2\.9\.4\s+dtrfixture/dtr-api:2\.9\.4$`, res.stdout))

	// One replica down: the majority holds, backups move to the next replica,
	// and a backup of the one that is down is refused, naming the healthy ones.
	c.Stop(t, ids[0], "registry")
	st, res = status(t, cfg)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, st.Quorum.Healthy, 2)
	assert.Assert(t, st.Quorum.OK)
	assert.Equal(t, st.BackupReplica, ids[1])
	assert.DeepEqual(t, st.Replicas[0].Problems, []string{"registry is exited"})

	dir := t.TempDir()
	out := filepath.Join(dir, "backup.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "--replica-id", ids[0], "-o", out)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Equal(t, strings.TrimSpace(res.stderr), fmt.Sprintf(
		"backup failed, %s was not written: replica %s is not healthy (registry is exited): healthy replicas: %s, %s", out, ids[0], ids[1], ids[2]))
	res = docker(t, cfg, nil, "dtr", "backup", "create", "--replica-id", "0000000000ff", "-o", out)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "replica 0000000000ff not found: this DTR's replicas are "+ids[0]+" (registry is exited), "+ids[1]+" (healthy)"))
	left, _ := os.ReadDir(dir)
	assert.Equal(t, len(left), 0)
	assertNoHelpers(t, c)

	// The majority lost in RethinkDB while every container runs: the
	// servers of two replicas are cut off from the third's (docker network
	// disconnect), and its table stops taking writes. The containers alone
	// would say 2 of 3 healthy; the database says none can take writes.
	c.Disconnect(t, ids[0])
	c.Disconnect(t, ids[1])
	assert.Assert(t, c.WaitMajorityLost(t, ids[2]) > 0)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json"}).RunWrite(driver)
	assert.ErrorContains(t, err, "primary replica")
	began := time.Now()
	st, res = status(t, cfg)
	t.Logf("status with the majority lost in RethinkDB took %s", time.Since(began).Round(100*time.Millisecond))
	assert.Equal(t, res.code, 1, "scripts see the lost majority: %s", res.stderr)
	assert.Equal(t, strings.TrimSpace(res.stderr), "DTR has lost its majority: 0 of 3 replicas healthy, it needs 2 (RethinkDB sees 1 of 3 servers; dtr2.properties cannot take writes)")
	assert.Assert(t, !st.Quorum.OK)
	assert.Equal(t, st.Database.ServersConnected, 1)
	assert.Equal(t, len(st.Database.Tables), 1)
	assert.Assert(t, !st.Database.Tables[0].ReadyForWrites)
	assert.Assert(t, len(st.Database.Issues) > 0, "RethinkDB's current_issues")
	assert.Equal(t, st.Database.Issues[0].Type, "table_availability")
	for _, rep := range st.Replicas {
		assert.Assert(t, !rep.Healthy, "%s", rep.ID)
		assert.Assert(t, is.Contains(strings.Join(rep.Problems, "; "), "dtr2.properties cannot take writes"), "%s", rep.ID)
	}
	// Each cut-off server sees itself alone: which one answered is the
	// engine's timing, not the verdict.
	seen := st.Database.ReadFrom
	for _, id := range ids {
		if id != seen {
			assert.Assert(t, is.Contains(strings.Join(st.Replicas[slices.Index(ids, id)].Problems, "; "), "its RethinkDB server dtr_rethinkdb_"+id+" is not connected to dtr_rethinkdb_"+seen))
		}
	}
	assertNoHelpers(t, c)

	res = docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stdout, "0 of 3 replicas healthy, a majority needs 2: MAJORITY LOST"))
	assert.Assert(t, is.Contains(res.stdout, " sees 1 of 3 replicas' servers connected; 1 of 1 tables cannot take writes: dtr2.properties; "))
	assert.Assert(t, is.Regexp(`(?m)^  table_availability( \(critical\))?: .*properties`, res.stdout))

	// A failing health check counts as down too.
	c.SetUnhealthy(t, ids[1], "api", true)
	st, res = status(t, cfg)
	assert.Equal(t, res.code, 1)
	assert.Equal(t, st.Replicas[1].Problems[0], "api is unhealthy")
	assert.Equal(t, st.BackupReplica, ids[2])
	res = docker(t, cfg, nil, "dtr", "status")
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Regexp(`(?m)^`+ids[1]+`\s+\S+\s+2\.9\.4\s+no: api is unhealthy; `, res.stdout))

	c.Stop(t, ids[2])
	st, res = status(t, cfg)
	assert.Equal(t, res.code, 1)
	assert.Equal(t, st.Quorum.Healthy, 0)
	assert.Equal(t, st.BackupReplica, "")
	// No RethinkDB runs: status says the database could not be asked.
	c.Stop(t, ids[0], "rethinkdb")
	c.Stop(t, ids[1], "rethinkdb")
	st, res = status(t, cfg)
	assert.Equal(t, res.code, 1)
	assert.Equal(t, st.Database.Error, "no replica's RethinkDB container runs")
	assert.Assert(t, is.Contains(res.stderr, "RethinkDB could not be asked, so its health is unknown: no replica's RethinkDB container runs"))
	res = docker(t, cfg, nil, "dtr", "status")
	assert.Assert(t, is.Contains(res.stdout, "Database: RethinkDB could not be asked (no replica's RethinkDB container runs): the replicas are judged by their containers only."))
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-o", out)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "no healthy DTR replica: "))
}

// The round trip a user makes: back up through the context, verify, wipe,
// restore, and find every document as it was.
func TestRoundTripThroughTheContext(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{})
	first, second := c.Replicas[0], c.Replicas[1]
	driver := c.Connect(t, first.ID) // the test's own way in, not the plugin's
	dtrtest.Seed(t, driver)
	c.Replicate(t) // as DTR's tables are
	// Write settings of DTR's own besides: the restore keeps them, and
	// the replicas on every server.
	assert.NilError(t, r.DB("dtr2").Table("tags").Config().Update(map[string]any{"write_acks": "single", "durability": "soft"}).Exec(driver))
	before := dtrtest.Snapshot(t, driver)

	dir := t.TempDir()
	backup := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-o", backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, fmt.Sprintf("%s: DTR 2.9.4, replica %s on node ", backup, first.ID)))
	assert.Assert(t, is.Contains(res.stdout, "12 tables, 391 rows"))
	assert.Assert(t, is.Contains(res.stderr, "using replica "+first.ID))
	assert.Assert(t, is.Contains(res.stderr, "the healthy replica with the lowest id"))
	assertNoHelpers(t, c)
	st, err := os.Stat(backup)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))

	res = docker(t, cfg, nil, "dtr", "backup", "verify", backup)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", backup)
	assert.Equal(t, res.code, 0, res.stderr)
	var rep struct{ DTRVersion, ReplicaID string }
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &rep))
	assert.Equal(t, rep.DTRVersion, "2.9.4")
	assert.Equal(t, rep.ReplicaID, first.ID)

	// Restoring over the live tables is refused, after connecting: the
	// helper goes away on that failure too.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", backup)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "--force"))
	assertNoHelpers(t, c)

	dtrtest.DropAll(t, driver)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--replica-id", first.ID, backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+backup+" into replica "+first.ID))
	assert.DeepEqual(t, dtrtest.Snapshot(t, driver), before)
	assertNoHelpers(t, c)
	var tags struct {
		Shards []struct {
			Replicas []string `rethinkdb:"replicas"`
		} `rethinkdb:"shards"`
		WriteAcks  string `rethinkdb:"write_acks"`
		Durability string `rethinkdb:"durability"`
	}
	assert.NilError(t, r.DB("dtr2").Table("tags").Config().ReadOne(&tags, driver))
	assert.Equal(t, len(tags.Shards), 1)
	assert.Equal(t, len(tags.Shards[0].Replicas), len(c.Replicas), "a replica on every server, as before")
	assert.Equal(t, tags.WriteAcks, "single")
	assert.Equal(t, tags.Durability, "soft")
	// The replica's other containers use the database: stopped while it
	// loads, started again after.
	for _, comp := range []string{"api", "registry"} {
		name := "dtr-" + comp + "-" + first.ID
		assert.Assert(t, is.Contains(res.stderr, "stopped "+name))
		assert.Assert(t, is.Contains(res.stderr, "started "+name+" again"))
		assertRunning(t, c, name)
	}
	assert.Assert(t, !strings.Contains(res.stderr, "stopped dtr-rethinkdb-"))

	// Over live tables: the plan, then a safety backup beside the input.
	// The replica is named: its api is "starting" again after the restore,
	// so the default choice would be another replica for a while, and a
	// named one is used with a warning.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--replica-id", first.ID, backup)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Regexp("(?m)^stop dtr-.*-"+first.ID+", dtr-.*-"+first.ID+"$", res.stdout))
	assert.Assert(t, is.Contains(res.stdout, "drop and create table dtr2.tags: 60 rows now, 60 rows after"))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "-y", "--replica-id", first.ID, backup)
	assert.Equal(t, res.code, 0, res.stderr)
	safety, err := filepath.Glob(filepath.Join(dir, "safety-metadata-"+first.ID+"-*.tar"))
	assert.NilError(t, err)
	assert.Equal(t, len(safety), 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "safety backup of the 12 tables this restore replaces: "+safety[0]))
	assert.DeepEqual(t, dtrtest.Snapshot(t, driver), before)
	assertNoHelpers(t, c)

	// Another replica, streamed to stdout and inspected from stdin: the
	// replicas are one RethinkDB cluster, so it holds the same tables.
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--replica-id", second.ID, "-o", "-")
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, []byte(res.stdout), "dtr", "backup", "inspect", "--format", "json", "-")
	assert.Equal(t, res.code, 0, res.stderr)
	var rep2 struct {
		ReplicaID string
		Tables    []struct {
			DB, Name string
			Rows     int
		}
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &rep2))
	assert.Equal(t, rep2.ReplicaID, second.ID)
	assert.Equal(t, len(rep2.Tables), len(dtrtest.Tables))
	rows := 0
	for _, tb := range rep2.Tables {
		rows += tb.Rows
	}
	assert.Equal(t, rows, 391)
	assertNoHelpers(t, c)
}

// `docker --context NAME dtr …` works like any docker command, and the
// default context is not used then.
func TestNamedContext(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1})
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	res := docker(t, cfg, nil, "context", "create", "second", "--docker", "host="+host)
	assert.Equal(t, res.code, 0, res.stderr)

	// The default context leads nowhere; only --context reaches the DTR.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	dir := t.TempDir()
	out := filepath.Join(dir, "backup.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-o", out)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "nothing.sock"))
	assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "one line: %q", res.stderr)

	res = docker(t, cfg, nil, "--context", "second", "dtr", "backup", "create", "-o", out)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "replica "+c.Replicas[0].ID))
	res = docker(t, cfg, nil, "--context", "second", "dtr", "status")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, `DTR behind Docker context "second": 1 of 1 replicas healthy`))
}

// The helper container is what the issue describes, and it goes away on
// SIGINT; one left by a killed run is removed by the next run.
func TestDatabaseHelper(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	seedEvents(t, driver, 30000, 300)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")

	t.Run("missing agent binary", func(t *testing.T) {
		dir := t.TempDir()
		missing := filepath.Join(dir, "docker-dtr-linux-arm64")
		res := docker(t, cfg, nil, "dtr", "backup", "create", "--agent-binary", missing, "-o", filepath.Join(dir, "b.tar"))
		assert.Equal(t, res.code, 1)
		assert.Equal(t, res.stderr, "--agent-binary "+missing+": no such file: build static linux binaries with 'make cross' (bin/docker-dtr-linux-<arch>)\n")
		assertNoHelpers(t, c)

		// A file for another machine is refused once the node's is known.
		wrong := filepath.Join(dir, "docker-dtr-darwin-arm64")
		assert.NilError(t, os.WriteFile(wrong, []byte("\xcf\xfa\xed\xfe not ELF"), 0o755))
		res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--agent-binary", wrong, "-o", filepath.Join(dir, "b.tar"))
		assert.Equal(t, res.code, 1)
		assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "one line: %q", res.stderr)
		assert.Assert(t, is.Contains(res.stderr, "--agent-binary "+wrong+" is not a linux program and cannot run on node "))
		assert.Assert(t, is.Contains(res.stderr, "'make cross' writes bin/docker-dtr-linux-"))
		assertNoHelpers(t, c)
	})

	// An agent that starts but dies: its reason reaches the user, and the
	// helper is removed after the failure.
	t.Run("agent that fails", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "main.go")
		assert.NilError(t, os.WriteFile(src, []byte("package main\nimport \"os\"\nfunc main() { os.Stderr.WriteString(\"agent: boom\\n\"); os.Exit(3) }\n"), 0o644))
		agent := filepath.Join(dir, "agent")
		build := exec.Command("go", "build", "-o", agent, src)
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		out, err := build.CombinedOutput()
		assert.NilError(t, err, string(out))
		res := docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--agent-binary", agent, "-o", filepath.Join(dir, "b.tar"))
		assert.Equal(t, res.code, 1)
		assert.Assert(t, is.Regexp(`^backup failed, \S+ was not written: the database helper \S+ on node \S+ exited before it was done: it exited with code 3: agent: boom\n$`, res.stderr))
		assertNoHelpers(t, c)
	})

	// start runs a backup and waits until its helper runs.
	start := func(t *testing.T, dir string) (*exec.Cmd, *syncBuffer, container.Summary) {
		cmd := exec.Command(bin, "backup", "create", "-o", filepath.Join(dir, "backup.tar"))
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		assert.NilError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		var helper container.Summary
		poll.WaitOn(t, func(poll.LogT) poll.Result {
			name := helperName.FindStringSubmatch(stderr.String())
			if name == nil {
				return poll.Continue("no helper started yet; stderr: %s", stderr.String())
			}
			for _, h := range helperContainers(t, c) {
				if h.State == "running" && h.Names[0] == "/"+name[1] {
					helper = h
					return poll.Success()
				}
			}
			return poll.Continue("%s is not running yet", name[1])
		}, poll.WithTimeout(60*time.Second), poll.WithDelay(10*time.Millisecond))
		return cmd, stderr, helper
	}

	t.Run("SIGINT", func(t *testing.T) {
		dir := t.TempDir()
		cmd, stderr, h := start(t, dir)
		info, err := c.Client.ContainerInspect(context.Background(), h.ID)
		assert.NilError(t, err)
		assert.Equal(t, info.HostConfig.LogConfig.Type, "none")
		rdb, err := c.Client.ContainerInspect(context.Background(), rep.Containers["rethinkdb"])
		assert.NilError(t, err)
		assert.Equal(t, string(info.HostConfig.NetworkMode), "container:"+rdb.ID, "in RethinkDB's network namespace")
		assert.Equal(t, info.Image, mustImageID(t, c, rep.Containers["rethinkdb"]), "the image of the replica's dtr-rethinkdb")
		// The agent from the node's cache, mounted read-only.
		assert.DeepEqual(t, []string(info.Config.Entrypoint), []string{"/docker-dtr-agent.d/docker-dtr-agent"})
		assert.Equal(t, info.Config.Labels[helpercontainer.LabelReplica], rep.ID)
		var ca, cache bool
		for _, m := range info.Mounts {
			switch m.Destination {
			case "/ca":
				ca = m.Name == "dtr-ca-"+rep.ID && !m.RW
			case agentbin.CacheDir:
				cache = strings.HasPrefix(m.Name, "docker-dtr-agent-") && !m.RW
			}
		}
		assert.Assert(t, ca, "dtr-ca-<id> mounted read-only at /ca: %+v", info.Mounts)
		assert.Assert(t, cache, "the agent cache mounted read-only: %+v", info.Mounts)
		for _, e := range info.Config.Env {
			assert.Assert(t, !strings.Contains(strings.ToLower(e), "key") && !strings.Contains(strings.ToLower(e), "pass"), "no secret in the helper's environment: %s", e)
		}

		assert.NilError(t, cmd.Process.Signal(syscall.SIGINT))
		err = cmd.Wait()
		var exit *exec.ExitError
		assert.Assert(t, errors.As(err, &exit), "non-zero exit: %v", err)
		assert.Equal(t, exit.ExitCode(), 130, "exit status 130, interrupted")
		assert.Assert(t, is.Contains(stderr.String(), "interrupted"))
		assertNoHelpers(t, c)
		left, _ := os.ReadDir(dir)
		assert.Equal(t, len(left), 0, "left behind: %v", left)
	})

	t.Run("killed run's helper goes by itself", func(t *testing.T) {
		dir := t.TempDir()
		cmd, _, h := start(t, dir)
		assert.NilError(t, cmd.Process.Kill())
		cmd.Wait()
		// The helper's stdin closes with the plugin, so its agent exits,
		// and the container removes itself.
		waitGone(t, c, h, helperGone)
		res := docker(t, cfg, nil, "dtr", "backup", "create", "-o", filepath.Join(dir, "next.tar"))
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Assert(t, !strings.Contains(res.stderr, "removed the "), "no helper left to remove: %s", res.stderr)
		// What the killed run did leave is its temporary file beside the
		// output, which this run removes.
		assert.Assert(t, is.Contains(res.stderr, "the temporary file of a backup that was killed"))
		assertNoHelpers(t, c)
	})
}

var helperName = regexp.MustCompile(`started database helper (\S+) on node`)

// syncBuffer is a buffer a running command writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func mustImageID(t testing.TB, c *dtrfixture.Cluster, name string) string {
	info, err := c.Client.ContainerInspect(context.Background(), name)
	assert.NilError(t, err)
	return info.Image
}

// seedEvents makes dtr2.events of n documents with a payload of size
// bytes each: a table large enough that a backup takes a moment.
func seedEvents(t testing.TB, driver *r.Session, n, size int) {
	t.Helper()
	_, err := r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").TableCreate("events").RunWrite(driver)
	assert.NilError(t, err)
	// In batches: a query holds at most 100,000 array elements (RethinkDB's
	// array_limit) and 64 MiB.
	per := max(1, min(50000, (16<<20)/size))
	for start := 0; start < n; start += per {
		batch := make([]any, 0, per)
		for i := start; i < min(start+per, n); i++ {
			batch = append(batch, map[string]any{"id": fmt.Sprintf("event-%07d", i), "payload": strings.Repeat("p", size)})
		}
		_, err = r.DB("dtr2").Table("events").Insert(batch, r.InsertOpts{Durability: "soft"}).RunWrite(driver)
		assert.NilError(t, err)
	}
}

// assertNoJournal: no restore journal on the cluster.
func assertNoJournal(t *testing.T, c *dtrfixture.Cluster) {
	t.Helper()
	list, err := c.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", nodejournal.LabelJournal))})
	assert.NilError(t, err)
	assert.Equal(t, len(list), 0, "journals left: %v", list)
}
