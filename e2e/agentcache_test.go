package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// TestAgentCache: the agent goes to a node once. The first backup through
// the context fills the node's cache volume, through the engine (counted by
// a proxy: the 30 MB binary goes up); the second runs the agent from it and
// sends the engine almost nothing; a run killed with SIGKILL while it fills
// leaves a volume without its marker, which the next run fills again and
// works; on a miss the cache volumes of other agents (older plugins) go,
// but the newest of them.
func TestAgentCache(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1})
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	digest, err := agentbin.Digest(bin)
	assert.NilError(t, err)
	st, err := os.Stat(bin)
	assert.NilError(t, err)
	name := agentbin.VolumeName(digest)
	ctx := context.Background()
	caches := func() map[string]map[string]string {
		list, err := c.Client.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", agentbin.LabelDigest))})
		assert.NilError(t, err)
		m := map[string]map[string]string{}
		for _, v := range list.Volumes {
			m[v.Name] = v.Labels
		}
		return m
	}
	removeCaches := func() {
		for v := range caches() {
			// In use for a moment after a run: the engine removes its
			// helper (AutoRemove), which the plugin does not wait for.
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if err := c.Client.VolumeRemove(ctx, v, true); err != nil && !errdefs.IsNotFound(err) {
					return poll.Continue("%v", err)
				}
				return poll.Success()
			}, poll.WithTimeout(30*time.Second), poll.WithDelay(20*time.Millisecond))
		}
	}
	// A cache volume is state the plugin keeps on purpose; the suite's
	// sweep removes those left, this test its own.
	removeCaches()
	t.Cleanup(removeCaches)
	// Two older plugins', on this architecture, unused: on a miss the
	// older goes, the newer stays (two plugins used in turn keep theirs).
	old, newer := "docker-dtr-agent-0000000000000000", "docker-dtr-agent-1111111111111111"
	for i, v := range []string{old, newer} {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // the engine's times are in seconds
		}
		_, err = c.Client.VolumeCreate(ctx, volume.CreateOptions{Name: v, Labels: map[string]string{
			agentbin.LabelDigest: strings.Repeat(v[len(v)-1:], 64), agentbin.LabelArch: runtime.GOARCH,
		}})
		assert.NilError(t, err)
	}

	dir := t.TempDir()
	backup := func(t *testing.T, p *engineProxy) result {
		t.Helper()
		cmd := exec.Command("docker", "--config", cfg, "dtr", "backup", "create", "-o", filepath.Join(dir, "b.tar"))
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host())
		res := run(t, cmd, nil)
		assert.Equal(t, res.code, 0, res.stderr)
		os.Remove(filepath.Join(dir, "b.tar"))
		return res
	}

	t.Run("first run fills, second hits", func(t *testing.T) {
		p := newEngineProxy(t)
		res := backup(t, p)
		assert.Assert(t, is.Contains(res.stderr, "(its agent put in the node's cache)"))
		assert.Assert(t, p.Up() > st.Size(), "the agent went up: %d bytes", p.Up())
		got := caches()
		assert.DeepEqual(t, got[name], map[string]string{agentbin.LabelDigest: digest, agentbin.LabelArch: runtime.GOARCH})
		_, kept := got[old]
		assert.Assert(t, !kept, "the oldest other agent's cache volume is removed on a miss: %v", got)
		_, kept = got[newer]
		assert.Assert(t, kept, "the newest other agent's cache volume is kept: %v", got)

		p = newEngineProxy(t)
		res = backup(t, p)
		assert.Assert(t, is.Contains(res.stderr, "(its agent from the node's cache)"))
		t.Logf("first run sent the engine the agent; the second %d bytes", p.Up())
		assert.Assert(t, p.Up() < 1<<20, "the agent was not copied again: %d bytes went to the engine", p.Up())
		assertNoHelpers(t, c)
	})

	t.Run("SIGKILL while filling, then a run fills again", func(t *testing.T) {
		removeCaches()
		p := newEngineProxy(t)
		cmd := exec.Command(bin, "backup", "create", "-o", filepath.Join(dir, "killed.tar"))
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host(), "DOCKER_CONFIG="+cfg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		assert.NilError(t, cmd.Start())
		deadline := time.Now().Add(2 * time.Minute)
		for p.Up() < st.Size()/3 {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the fill never got under way: %s", stderr.String())
			}
			time.Sleep(time.Millisecond)
		}
		assert.NilError(t, cmd.Process.Signal(syscall.SIGKILL))
		cmd.Wait()
		t.Logf("killed after %d bytes went up", p.Up())
		_, left := caches()[name]
		assert.Assert(t, left, "the killed fill's volume is there (without its marker)")

		res := backup(t, newEngineProxy(t))
		assert.Assert(t, is.Contains(res.stderr, "(its agent put in the node's cache)"), "a killed fill is a miss: %s", res.stderr)
		res = backup(t, newEngineProxy(t))
		assert.Assert(t, is.Contains(res.stderr, "(its agent from the node's cache)"))
		assertNoHelpers(t, c)
	})
}
