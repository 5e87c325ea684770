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
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
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
	assert.Check(t, is.Contains(res.stderr, "started database helper "))
	assert.Check(t, is.Contains(res.stderr, "(its agent from the node's cache)"))
	assert.Check(t, is.Contains(res.stderr, "from the database helper"))
	assert.Check(t, is.Contains(res.stderr, "the database helper's peak memory: "))
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

// A restore through the context does its database work next to the
// database too: the plan, the safety backup, the load and the check of
// every key run in one database helper, which gets the backup compressed
// (once for the load, once for the key check). The database ends as the
// backup says, byte for byte as direct mode dumps it; the safety backup
// verifies; the client key never crosses the Docker API.
func TestRestoreThroughContextNextToData(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	gen, err := dtrgen.Generate(context.Background(), driver, dtrgen.Options{Rows: 20000, Seed: benchSeed})
	assert.NilError(t, err)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	dir := t.TempDir()
	directArgs := func(out string) []string {
		return []string{"backup", "create", "-q", "-o", out, "--replica-id", rep.ID,
			"--dtr-version", dtrfixture.DefaultVersion, "--rethinkdb-addr", rep.RethinkAddr,
			"--rethinkdb-ca", c.CAFile, "--rethinkdb-cert", c.CertFile, "--rethinkdb-key", c.KeyFile,
			"--rethinkdb-server-name", "dtr-rethinkdb-" + rep.ID + ".dtr-ol"}
	}
	backup := filepath.Join(dir, "backup.tar")
	res := run(t, exec.Command(bin, directArgs(backup)...), nil)
	assert.Equal(t, res.code, 0, res.stderr)
	// The data changes after the backup: the restore must undo that.
	_, err = r.DB("dtr2").Table("tags").Delete().RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-the-backup"}).RunWrite(driver)
	assert.NilError(t, err)

	// A first run puts the agent in the node's cache: the counted run is
	// a user's second.
	res = run(t, exec.Command(bin, "backup", "create", "-q", "-o", filepath.Join(dir, "first.tar")), nil)
	assert.Equal(t, res.code, 0, res.stderr)

	p := newEngineProxy(t)
	safetyDir := t.TempDir()
	cmd := exec.Command(bin, "backup", "restore", "--force", "--progress", "plain", "--safety-dir", safetyDir, backup)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host())
	res = run(t, cmd, nil)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Check(t, is.Equal(strings.Count(res.stderr, "started database helper "), 1), "one helper for the whole restore:\n%s", res.stderr)
	assert.Check(t, is.Contains(res.stderr, "from the database helper"))
	assert.Check(t, is.Contains(res.stdout, "row counts and primary keys checked"))
	assertNoHelpers(t, c)
	for _, req := range p.Requests() {
		assert.Check(t, !strings.Contains(req, "key.pem"), "the client key crossed the Docker API: %s", req)
	}
	size := fileSize(t, backup)
	t.Logf("across the Docker API: %d bytes to the engine, %d from it, for a backup of %d bytes (%d bytes of documents, %d rows)", p.Up(), p.Down(), size, gen.Bytes, gen.Rows)
	// Not a speed figure: both passes crossed compressed.
	assert.Check(t, p.Up() < size/2, "%d bytes to the engine for a backup of %d", p.Up(), size)

	after := filepath.Join(dir, "after.tar")
	res = run(t, exec.Command(bin, directArgs(after)...), nil)
	assert.Equal(t, res.code, 0, res.stderr)
	a, err := os.ReadFile(backup)
	assert.NilError(t, err)
	b, err := os.ReadFile(after)
	assert.NilError(t, err)
	fields := []string{"started", "finished", "manifestSHA256"}
	assert.Assert(t, string(tartest.Normalize(t, a, true, fields...)) == string(tartest.Normalize(t, b, true, fields...)),
		"the database after the restore differs from the backup")

	safety := names(t, safetyDir)
	assert.Assert(t, is.Len(safety, 1))
	res = run(t, exec.Command(bin, "backup", "verify", filepath.Join(safetyDir, safety[0])), nil)
	assert.Equal(t, res.code, 0, "the safety backup verifies: %s", res.stderr)
}
