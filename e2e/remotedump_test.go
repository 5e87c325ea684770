package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/tartest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// `backup create` through the Docker context dumps in a helper next to the
// database and sends the archive compressed: once decompressed it is the
// archive direct mode (--rethinkdb-addr) writes of the same data, entry
// for entry and byte for byte, except the times of the run (the start, in
// the manifest and every header's mtime, the finish, and the manifest's
// checksum over them). DTR's client key never crosses the Docker API (no
// archive read of it), and what crosses it is counted against the
// documents' bytes.
func TestCreateThroughContextSameAsDirect(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{}})
	rep := c.Replicas[0]
	gen, err := dtrgen.Generate(context.Background(), c.Connect(t, rep.ID), dtrgen.Options{Rows: 20000, Seed: benchSeed})
	assert.NilError(t, err)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	dir := t.TempDir()

	direct := filepath.Join(dir, "direct.tar")
	res := run(t, exec.Command(bin, "backup", "create", "-q", "-o", direct, "--replica-id", rep.ID,
		"--dtr-version", dtrfixture.DefaultVersion, "--rethinkdb-addr", rep.RethinkAddr,
		"--rethinkdb-ca", c.CAFile, "--rethinkdb-cert", c.CertFile, "--rethinkdb-key", c.KeyFile,
		"--rethinkdb-server-name", "dtr-rethinkdb-"+rep.ID+".dtr-ol"), nil)
	assert.Equal(t, res.code, 0, res.stderr)

	// A first run puts the agent in the node's cache (a copy of the
	// binary, once per node): the counted run is a user's second.
	res = run(t, exec.Command(bin, "backup", "create", "-q", "-o", filepath.Join(dir, "first.tar")), nil)
	assert.Equal(t, res.code, 0, res.stderr)

	p := newEngineProxy(t)
	via := filepath.Join(dir, "context.tar")
	cmd := exec.Command(bin, "backup", "create", "--progress", "plain", "-o", via)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host())
	res = run(t, cmd, nil)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Contains(res.stderr, "started dump helper "))
	assert.Check(t, is.Contains(res.stderr, "(its agent from the node's cache)"))
	assert.Check(t, is.Contains(res.stderr, "from the dump helper"))
	assertNoHelpers(t, c)

	a, err := os.ReadFile(direct)
	assert.NilError(t, err)
	b, err := os.ReadFile(via)
	assert.NilError(t, err)
	fields := []string{"started", "finished", "manifestSHA256"}
	assert.Assert(t, len(a) > 1<<20, "a backup of %d rows is %d bytes", gen.Rows, len(a))
	assert.Assert(t, string(tartest.Normalize(t, a, true, fields...)) == string(tartest.Normalize(t, b, true, fields...)),
		"the archive through the context differs from direct mode's beyond the run's times (%d and %d bytes)", len(b), len(a))
	f, err := os.Open(via)
	assert.NilError(t, err)
	defer f.Close()
	rep2, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep2.OK(), "%+v", rep2.Problems)

	for _, req := range p.Requests() {
		assert.Check(t, !strings.Contains(req, "key.pem"), "the client key crossed the Docker API: %s", req)
	}
	ratio := float64(p.Down()+p.Up()) / float64(gen.Bytes)
	t.Logf("across the Docker API: %d bytes from the engine, %d to it, for %d bytes of documents (%d rows): %.3f per byte of documents; archive %d bytes",
		p.Down(), p.Up(), gen.Bytes, gen.Rows, ratio, len(b))
	// Not a speed figure: the documents crossed compressed, not as
	// RethinkDB's TLS stream (more bytes than the documents).
	assert.Assert(t, p.Down() < gen.Bytes, "%d bytes from the engine for %d bytes of documents", p.Down(), gen.Bytes)
}
