package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// make sandbox, then a backup and a verify against it through its Docker
// context, then make sandbox-down: the engine is left as it was (its
// containers, volumes, networks and the Docker CLI's contexts; the images
// the fixture builds are kept for the next run, as the tests keep them).
func TestSandbox(t *testing.T) {
	cfg := dockerConfig(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make: ", err)
	}
	c := dtrfixture.Engine(t)
	// The sandbox runs in child processes, which use the engine under
	// this process's lock.
	dtrfixture.LockEngine()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	sandbox := func(t *testing.T, target string) string {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", target)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, dtrfixture.EnvLocked+"=1", "REPLICAS=1",
			// A bridge dtr-ol: swarm mode is this process's to enter and
			// leave (the sandbox's own make sandbox-down leaves it).
			"DTRFIXTURE_NETWORK=bridge")
		out, err := cmd.CombinedOutput()
		assert.NilError(t, err, "make %s: %s", target, out)
		return string(out)
	}
	before := engineNow(t, c, cfg)
	t.Cleanup(func() {
		cmd := exec.Command("make", "--no-print-directory", "sandbox-down")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg, dtrfixture.EnvLocked+"=1", "DTRFIXTURE_NETWORK=bridge")
		cmd.Run()
	})

	out := sandbox(t, "sandbox")
	assert.Check(t, is.Contains(out, "sandbox up: 1 replica(s) of DTR 2.9.4"))
	assert.Check(t, is.Contains(out, "docker --context dtr-sandbox dtr status"))
	dir := t.TempDir()
	meta := filepath.Join(dir, "backup-metadata.tar")
	images := filepath.Join(dir, "backup-images.tar")
	for _, args := range [][]string{
		{"status"},
		{"backup", "images", "-q", "-o", images},
		{"backup", "create", "-q", "-o", meta},
		{"backup", "verify", "--restore-test", meta},
		{"backup", "verify", images, "--metadata", meta},
	} {
		res := docker(t, cfg, nil, append([]string{"--context", "dtr-sandbox", "dtr"}, args...)...)
		assert.Equal(t, res.code, 0, "%v: %s%s", args, res.stdout, res.stderr)
	}

	out = sandbox(t, "sandbox-down")
	assert.Check(t, is.Contains(out, "sandbox down:"))
	assert.Check(t, is.DeepEqual(engineNow(t, c, cfg), before))
}

// engineNow is what of the engine a sandbox may change: its containers,
// volumes (the plugin's agent cache aside) and networks, and the Docker
// CLI's contexts in config.
func engineNow(t *testing.T, c *client.Client, config string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true})
	assert.NilError(t, err)
	for _, x := range cs {
		out = append(out, "container "+strings.Join(x.Names, ","))
	}
	vs, err := c.VolumeList(ctx, volume.ListOptions{})
	assert.NilError(t, err)
	for _, v := range vs.Volumes {
		// The plugin's agent cache (pkg/agentbin) is kept on purpose, and
		// swept with the fixture's.
		if _, cache := v.Labels[agentbin.LabelDigest]; !cache {
			out = append(out, "volume "+v.Name)
		}
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{})
	assert.NilError(t, err)
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	cmd := exec.Command("docker", "--config", config, "context", "ls", "--format", "{{.Name}}")
	ctxs, err := cmd.Output()
	assert.NilError(t, err)
	for _, n := range strings.Fields(string(ctxs)) {
		out = append(out, "context "+n)
	}
	sort.Strings(out)
	return out
}
