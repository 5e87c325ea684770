package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The version and commit set by the Makefile's -ldflags reach `docker dtr
// version`, the plugin metadata and the Docker CLI's plugin listing alike.
func TestVersionThroughDocker(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI")
	}
	const ver, commit = "v1.2.3-e2e", "0a1b2c3"
	cfg := t.TempDir()
	plugins := filepath.Join(cfg, "cli-plugins")
	assert.NilError(t, os.Mkdir(plugins, 0o755))
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "docker-dtr"), "-ldflags",
		"-X github.com/docker-dtr/docker-dtr/internal/version.Version="+ver+
			" -X github.com/docker-dtr/docker-dtr/internal/version.Commit="+commit, "./cmd/docker-dtr")
	build.Dir = filepath.Dir(filepath.Dir(file))
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	assert.NilError(t, err, "go build: %s", out)

	res := docker(t, cfg, nil, "dtr", "version")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "docker-dtr version "+ver+"\n"))
	assert.Assert(t, is.Contains(res.stdout, "Git commit: "+commit+"\n"))
	assert.Assert(t, is.Contains(res.stdout, "Go version: "+runtime.Version()+"\n"))
	assert.Assert(t, is.Contains(res.stdout, "OS/Arch:    "+runtime.GOOS+"/"+runtime.GOARCH+"\n"))

	res = docker(t, cfg, nil, "dtr", "version", "--format", "json")
	assert.Equal(t, res.code, 0, res.stderr)
	var v struct{ Version, Commit, GoVersion, OS, Arch string }
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
	assert.DeepEqual(t, v, struct{ Version, Commit, GoVersion, OS, Arch string }{
		ver, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH})

	res = docker(t, cfg, nil, "dtr", "version", "extra")
	assert.Equal(t, res.code, 2, "usage error: %s", res.stderr)

	// The Docker CLI reads the version from the plugin's metadata, with the
	// commit as semver build metadata.
	meta, err := exec.Command(filepath.Join(plugins, "docker-dtr"), "docker-cli-plugin-metadata").Output()
	assert.NilError(t, err)
	var m struct{ Version, Vendor string }
	assert.NilError(t, json.Unmarshal(meta, &m))
	assert.Equal(t, m.Version, ver+"+"+commit)
	res = docker(t, cfg, nil, "info", "--format", "{{range .ClientInfo.Plugins}}{{.Name}} {{.Version}}{{\"\\n\"}}{{end}}")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "dtr "+ver+"+"+commit+"\n"))
}
