package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Backups whose checksums all match but that RethinkDB would refuse, or
// load as other data: the built plugin's verify exits 1 and names the
// problem in one line, and its restore refuses each before it stops a
// container or changes a table, with -y.
func TestUnrestorableBackupsAreRefusedBeforeAnythingStops(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	dtrtest.Seed(t, driver)
	before := dtrtest.Snapshot(t, driver)

	dir := t.TempDir()
	for i, bad := range backuptest.UnrestorableBackups(t) {
		p := filepath.Join(dir, fmt.Sprintf("bad-%02d.tar", i))
		assert.NilError(t, os.WriteFile(p, bad.Data, 0o600))

		res := docker(t, cfg, nil, "dtr", "backup", "verify", p)
		assert.Equal(t, res.code, 1, "%s: %s", bad.Name, res.stdout+res.stderr)
		assert.Equal(t, strings.Count(res.stderr, "\n"), 1, "%s: one line on stderr: %q", bad.Name, res.stderr)
		assert.Assert(t, is.Contains(res.stderr, p+" is not a valid backup: 1 problem found"), bad.Name)
		assert.Assert(t, is.Contains(res.stdout, bad.Want), bad.Name)

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "-y", "--replica-id", rep.ID, p)
		assert.Equal(t, res.code, 1, "%s: %s", bad.Name, res.stderr)
		assert.Assert(t, is.Contains(res.stderr, bad.Want), bad.Name)
		assert.Assert(t, is.Contains(res.stderr, "it did not verify (1 problem, listed above); nothing was changed"), bad.Name)
		assert.Assert(t, !strings.Contains(res.stderr, "stopped dtr-") && !strings.Contains(res.stderr, "safety backup"), "%s: %s", bad.Name, res.stderr)
		// The database helper started while the backup verified says
		// nothing of it, and is gone (below).
		assert.Assert(t, !strings.Contains(res.stderr, "database helper"), "%s: %s", bad.Name, res.stderr)
	}
	for _, comp := range []string{"api", "registry"} {
		assertRunning(t, c, "dtr-"+comp+"-"+rep.ID)
	}
	assert.DeepEqual(t, dtrtest.Snapshot(t, driver), before)
	assertNoHelpers(t, c)
}
