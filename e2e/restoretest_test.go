package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// backup verify --restore-test restores a good backup, in clear or
// encrypted, or written by docker/dtr backup, into a throw-away RethinkDB
// and says so; a backup that does
// not verify, and a restore whose server dies under it, exit 1 with the
// reason. Each time nothing is left behind (no container, no volume), and
// DTR's own containers are never stopped.
func TestRestoreTest(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "api"}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	dtrtest.Seed(t, driver)
	dir := t.TempDir()
	plain := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-q", "-o", plain)
	assert.Equal(t, res.code, 0, res.stderr)
	pass := filepath.Join(dir, "pass")
	assert.NilError(t, os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600))
	sealed := filepath.Join(dir, "backup-metadata.tar.gpg")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--encrypt", "--passphrase-file", pass, "-o", sealed)
	assert.Equal(t, res.code, 0, res.stderr)

	dtrStarted := startedAt(t, c)
	volumes := volumeNames(t, c)
	untouched := func(t *testing.T) {
		t.Helper()
		assertNoHelpers(t, c)
		assert.Check(t, is.DeepEqual(volumeNames(t, c), volumes), "volumes left behind")
		assert.Check(t, is.DeepEqual(startedAt(t, c), dtrStarted), "a DTR container was stopped or restarted")
	}

	for _, tc := range []struct{ name, file string }{{"plain", plain}, {"encrypted", sealed}} {
		t.Run(tc.name, func(t *testing.T) {
			res := docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", "--progress", "plain", "--passphrase-file", pass, tc.file)
			assert.Equal(t, res.code, 0, res.stdout+res.stderr)
			assert.Check(t, is.Contains(res.stdout, tc.file+": restores: 12 tables, 391 rows, every primary key present, every index ready and write hook set, in "))
			assert.Check(t, is.Contains(res.stdout, "(into a throw-away RethinkDB from replica "+rep.ID+"'s image on node "))
			assert.Check(t, is.Contains(res.stderr, "started the throw-away RethinkDB docker-dtr-restore-test-"+rep.ID+"-"))
			assert.Check(t, is.Contains(res.stderr, "restored dtr2.tags: 60 rows, every primary key present"))
			untouched(t)
		})
	}

	t.Run("docker/dtr backup", func(t *testing.T) {
		official := backuptest.OfficialArchive(t, map[string][]string{
			"properties":   {`{"id":"ha.json","value":"{}"}`},
			"private_keys": {`{"key_id":"k1","created_at":"2020-01-01T00:00:00Z"}`},
			"tags":         {`{"id":"repo:v1","repository":"repo"}`, `{"id":"repo:v2","repository":"repo"}`},
		})
		res := docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", official)
		assert.Equal(t, res.code, 0, res.stdout+res.stderr)
		assert.Check(t, is.Contains(res.stdout, official+": restores: 3 tables, 4 rows, "))
		untouched(t)

		// --format json gives the same result to scripts, its time once,
		// in seconds.
		res = docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", "--format", "json", official)
		assert.Equal(t, res.code, 0, res.stdout+res.stderr)
		var out map[string]any
		assert.NilError(t, json.Unmarshal([]byte(res.stdout), &out), res.stdout)
		assert.Check(t, is.Equal(out["file"], official))
		assert.Check(t, is.Equal(out["rows"], float64(4)))
		assert.Check(t, is.Equal(out["replica"], rep.ID))
		secs, ok := out["restoreSeconds"].(float64)
		assert.Check(t, ok && secs > 0, "restoreSeconds: %v", out["restoreSeconds"])
		_, twice := out["restoreNanoseconds"]
		assert.Check(t, !twice, "the restore's time is given twice: %s", res.stdout)
		untouched(t)
	})

	t.Run("does not verify", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "backup-metadata.tar")
		u := backuptest.UnrestorableBackups(t)[0]
		assert.NilError(t, os.WriteFile(bad, u.Data, 0o600))
		res := docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", bad)
		assert.Equal(t, res.code, 1, res.stdout+res.stderr)
		assert.Check(t, is.Contains(res.stdout+res.stderr, u.Want))
		assert.Check(t, !strings.Contains(res.stderr, "throw-away"), "nothing is started for a backup that does not verify")
		untouched(t)
	})

	t.Run("the server dies", func(t *testing.T) {
		// The throw-away server is killed as soon as it runs: the restore
		// fails, says why, and the server's remains go.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		killed := make(chan string, 1)
		go func() {
			for ctx.Err() == nil {
				list, _ := c.Client.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind+"="+helpercontainer.KindRestoreTest))})
				if len(list) > 0 {
					c.Client.ContainerKill(ctx, list[0].ID, "KILL")
					killed <- list[0].ID
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		res := docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", plain)
		assert.Equal(t, res.code, 1, res.stdout+res.stderr)
		assert.Check(t, is.Contains(res.stderr, plain+" does not restore: "))
		select {
		case <-killed:
		default:
			t.Fatal("the server was never seen")
		}
		untouched(t)
	})

	t.Run("killed", func(t *testing.T) {
		// A restore test killed with SIGKILL leaves its server, labelled
		// with the dead run: the next command that starts a helper
		// removes it, volumes and all.
		cmd := exec.Command("docker", "--config", cfg, "dtr", "backup", "verify", "--restore-test", plain)
		assert.NilError(t, cmd.Start())
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		var server container.Summary
		for deadline := time.Now().Add(time.Minute); server.ID == ""; time.Sleep(20 * time.Millisecond) {
			assert.Assert(t, time.Now().Before(deadline), "no throw-away server appeared")
			list, err := c.Client.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind+"="+helpercontainer.KindRestoreTest))})
			assert.NilError(t, err)
			if len(list) > 0 {
				server = list[0]
			}
		}
		pid := pluginUnder(cmd.Process.Pid)
		assert.Assert(t, pid != 0, "no plugin process under the docker CLI")
		assert.NilError(t, syscall.Kill(pid, syscall.SIGKILL))
		cmd.Wait()
		_, err := c.Client.ContainerInspect(context.Background(), server.ID)
		assert.NilError(t, err, "the killed run's server is there until the next run")
		res := docker(t, cfg, nil, "dtr", "status")
		assert.Equal(t, res.code, 0, res.stderr)
		untouched(t)
	})

	t.Run("image backup", func(t *testing.T) {
		img := filepath.Join(t.TempDir(), "backup-images.tar")
		backuptest.WriteImageBackup(t, img, backuptest.Day(1), backuptest.VolumeWith(t, "a"))
		res := docker(t, cfg, nil, "dtr", "backup", "verify", "--restore-test", img)
		assert.Equal(t, res.code, 2, res.stdout+res.stderr)
		assert.Check(t, is.Contains(res.stderr, "--restore-test: "+img+" is an image backup"))
	})
}

// startedAt is when each of the cluster's DTR containers last started.
func startedAt(t *testing.T, c *dtrfixture.Cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rep := range c.Replicas {
		for _, name := range rep.Containers {
			info, err := c.Client.ContainerInspect(context.Background(), name)
			assert.NilError(t, err)
			out[name] = info.State.StartedAt
		}
	}
	return out
}

// volumeNames lists the engine's volumes.
func volumeNames(t *testing.T, c *dtrfixture.Cluster) []string {
	t.Helper()
	list, err := c.Client.VolumeList(context.Background(), volume.ListOptions{})
	assert.NilError(t, err)
	var names []string
	for _, v := range list.Volumes {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	return names
}
