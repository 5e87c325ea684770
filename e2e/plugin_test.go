// Package e2e runs the built plugin through the real docker CLI.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

var (
	buildOnce sync.Once
	pluginBin string
	buildErr  error
)

// buildPlugin builds the plugin once for the test binary.
func buildPlugin(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "docker-dtr-e2e-*")
		if err != nil {
			buildErr = err
			return
		}
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "docker-dtr"),
			"-ldflags", "-X github.com/docker-dtr/docker-dtr/internal/version.Version=e2e-test", "./cmd/docker-dtr")
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		pluginBin = filepath.Join(dir, "docker-dtr")
	})
	assert.NilError(t, buildErr)
	return pluginBin
}

func TestMain(m *testing.M) {
	code := dtrfixture.Main(m)
	if pluginBin != "" {
		os.RemoveAll(filepath.Dir(pluginBin))
	}
	os.Exit(code)
}

// dockerConfig makes a fresh Docker config directory whose cli-plugins holds
// the plugin, where the Docker CLI's plugin manager finds it.
func dockerConfig(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the docker CLI is required in CI")
		}
		t.Skip("no docker CLI")
	}
	bin := buildPlugin(t)
	dir := t.TempDir()
	plugins := filepath.Join(dir, "cli-plugins")
	assert.NilError(t, os.Mkdir(plugins, 0o755))
	assert.NilError(t, os.Symlink(bin, filepath.Join(plugins, "docker-dtr")))
	return dir
}

type result struct {
	stdout, stderr string
	code           int
}

func docker(t *testing.T, config string, stdin []byte, args ...string) result {
	t.Helper()
	return run(t, exec.Command("docker", append([]string{"--config", config}, args...)...), stdin)
}

// run runs a prepared docker command and returns what it printed and its
// exit status.
func run(t *testing.T, cmd *exec.Cmd, stdin []byte) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		assert.NilError(t, err)
	}
	return result{out.String(), errb.String(), code}
}

func TestDockerListsAndRunsThePlugin(t *testing.T) {
	cfg := dockerConfig(t)
	res := docker(t, cfg, nil, "--help")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Regexp(`(?m)^\s+dtr\*\s+Back up, verify and restore Docker Trusted Registry$`, res.stdout))

	res = docker(t, cfg, nil, "dtr", "--help")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "Usage:  docker dtr COMMAND"))

	res = docker(t, cfg, nil, "dtr", "backup", "--help")
	for _, sub := range []string{"create", "verify", "inspect", "restore"} {
		assert.Assert(t, is.Contains(res.stdout, "  "+sub+" "))
	}

	meta, err := exec.Command(filepath.Join(cfg, "cli-plugins", "docker-dtr"), "docker-cli-plugin-metadata").Output()
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(string(meta), `"Version": "e2e-test"`))

	res = docker(t, cfg, nil, "dtr", "backup", "verify")
	assert.Equal(t, res.code, 2, "usage error: %s", res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "requires a backup FILE"))
}

func TestBackupThroughDocker(t *testing.T) {
	cfg := dockerConfig(t)
	dir := t.TempDir()
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	certs := srv.Certs
	driver := srv.Connect(t)
	dtrtest.Seed(t, driver)
	before := dtrtest.Snapshot(t, driver)

	conn := []string{"--rethinkdb-addr", srv.Addr, "--rethinkdb-ca", certs.CA, "--rethinkdb-cert", certs.ClientCert,
		"--rethinkdb-key", certs.ClientKey, "--rethinkdb-server-name", rethinkserver.ServerName}
	backup := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, append([]string{"dtr", "backup", "create", "--dtr-version", "2.9.4", "--replica-id", "0123456789ab", "-o", backup}, conn...)...)
	assert.Equal(t, res.code, 0, res.stderr)

	// tar -tf still lists it, as operators check backups today
	if _, err := exec.LookPath("tar"); err == nil {
		out, err := exec.Command("tar", "-tf", backup).Output()
		assert.NilError(t, err)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		assert.Equal(t, lines[0], "dtr-backup-v2.9.4/")
		assert.Assert(t, is.Contains(string(out), "dtr-backup-v2.9.4/rethink/properties/0\n"))
	}

	res = docker(t, cfg, nil, "dtr", "backup", "verify", backup)
	assert.Equal(t, res.code, 0, res.stderr)

	// the standalone binary does the same
	standalone := exec.Command(filepath.Join(cfg, "cli-plugins", "docker-dtr"), "backup", "verify", backup)
	out, err := standalone.Output()
	assert.NilError(t, err)
	assert.Assert(t, is.Contains(string(out), ": verified"))

	data, err := os.ReadFile(backup)
	assert.NilError(t, err)
	dtrtest.DropAll(t, driver)
	res = docker(t, cfg, data, append([]string{"dtr", "backup", "restore", "-", "--dtr-version", "2.9.4"}, conn...)...)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.DeepEqual(t, dtrtest.Snapshot(t, driver), before)

	data[len(data)/2] ^= 0xff
	assert.NilError(t, os.WriteFile(backup, data, 0o600))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", backup)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "is not a valid backup"))
}
