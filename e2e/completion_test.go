package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/spf13/cobra"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// complete runs `docker __complete dtr ARGS…` as a shell's completion
// script does, and returns the offered values (descriptions cut) and the
// directive.
func complete(t *testing.T, cfg string, env []string, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	var global []string // flags of docker itself: --context
	for len(args) >= 2 && args[0] == "--context" {
		global, args = append(global, args[:2]...), args[2:]
	}
	cmd := exec.Command("docker", append(append(append([]string{"--config", cfg}, global...), cobra.ShellCompRequestCmd, "dtr"), args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	assert.NilError(t, cmd.Run(), "stderr: %s", errb.String())
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	assert.Assert(t, strings.HasPrefix(last, ":"), "no directive line: %q", out.String())
	var d int
	for _, c := range last[1:] {
		d = d*10 + int(c-'0')
	}
	var values []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, cobra.ShellCompDirective(d)
}

// The Docker CLI forwards __complete to the plugin: what a shell gets for
// `docker dtr …<TAB>`.
func TestCompletionThroughDocker(t *testing.T) {
	cfg := dockerConfig(t)

	values, d := complete(t, cfg, nil, "backup", "verify", "")
	assert.DeepEqual(t, values, []string{"tar", "gpg", "asc", "pgp", "zst", "tzst"})
	assert.Equal(t, d, cobra.ShellCompDirectiveFilterFileExt)
	values, d = complete(t, cfg, nil, "backup", "restore", "--force", "")
	assert.DeepEqual(t, values, []string{"tar", "gpg", "asc", "pgp", "zst", "tzst"})
	assert.Equal(t, d, cobra.ShellCompDirectiveFilterFileExt)
	_, d = complete(t, cfg, nil, "backup", "verify", "x.tar", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp, "verify takes one FILE")

	values, d = complete(t, cfg, nil, "backup", "verify", "--format", "")
	assert.DeepEqual(t, values, []string{"json"})
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp)
	values, _ = complete(t, cfg, nil, "status", "--format", "")
	assert.DeepEqual(t, values, []string{"json"})

	_, d = complete(t, cfg, nil, "backup", "restore", "--safety-dir", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveFilterDirs)
	_, d = complete(t, cfg, nil, "backup", "prune", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveFilterDirs, "prune takes a DIR")
	_, d = complete(t, cfg, nil, "backup", "prune", "/backups", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp, "prune takes one DIR")
	_, d = complete(t, cfg, nil, "backup", "verify", "--from", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveFilterDirs)
	_, d = complete(t, cfg, nil, "backup", "create", "--passphrase-file", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveDefault, "files")
	_, d = complete(t, cfg, nil, "backup", "create", "--output", "")
	assert.Equal(t, d, cobra.ShellCompDirectiveDefault, "files")

	values, _ = complete(t, cfg, nil, "")
	assert.Assert(t, is.Contains(values, "backup"))
	assert.Assert(t, is.Contains(values, "version"))
	assert.Assert(t, !slices.Contains(values, "agent"), "the hidden agent command is offered: %v", values)

	// No engine: nothing to offer, quickly, and no file names either.
	start := time.Now()
	values, d = complete(t, cfg, []string{"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "none.sock")},
		"backup", "create", "--replica-id", "")
	assert.Equal(t, len(values), 0, "%v", values)
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp)
	assert.Assert(t, time.Since(start) < 10*time.Second, "took %s", time.Since(start))

	// The replica ids of the DTR behind the context.
	c := dtrfixture.Start(t, dtrfixture.Options{})
	values, d = complete(t, cfg, nil, "backup", "create", "--replica-id", "")
	assert.DeepEqual(t, values, []string{c.Replicas[0].ID, c.Replicas[1].ID, c.Replicas[2].ID})
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp)
	values, _ = complete(t, cfg, nil, "backup", "restore", "--replica-id", "")
	assert.Equal(t, len(values), 3)

	// `docker --context X dtr …<TAB>` asks the engine of context X: one
	// with no engine offers nothing, even with a DTR behind the default.
	dead := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	ctxCmd := exec.Command("docker", "--config", cfg, "context", "create", "nowhere", "--docker", "host="+dead)
	out, err := ctxCmd.CombinedOutput()
	assert.NilError(t, err, "%s", out)
	values, d = complete(t, cfg, nil, "--context", "nowhere", "backup", "create", "--replica-id", "")
	assert.Equal(t, len(values), 0, "the ids of the default context's DTR: %v", values)
	assert.Equal(t, d, cobra.ShellCompDirectiveNoFileComp)
	// And one on the fixture's engine offers its ids.
	host, err := exec.Command("docker", "--config", cfg, "context", "inspect", "--format", "{{.Endpoints.docker.Host}}").Output()
	assert.NilError(t, err)
	out, err = exec.Command("docker", "--config", cfg, "context", "create", "here", "--docker", "host="+strings.TrimSpace(string(host))).CombinedOutput()
	assert.NilError(t, err, "%s", out)
	values, _ = complete(t, cfg, nil, "--context", "here", "backup", "create", "--replica-id", "")
	assert.Equal(t, len(values), 3, "%v", values)
}
