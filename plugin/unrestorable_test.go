package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Each backup of the corpus passes its checksums but cannot be restored
// as it is: verify exits 1 and names the problem in one line.
func TestVerifyRefusesUnrestorableBackups(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar")
	assert.NilError(t, os.WriteFile(good, backuptest.Restorable(t), 0o600))
	_, errOut, code := run(t, nil, "backup", "verify", good)
	assert.Equal(t, code, 0, errOut)
	for i, c := range backuptest.UnrestorableBackups(t) {
		t.Run(c.Name, func(t *testing.T) {
			p := filepath.Join(dir, "bad-"+string(rune('a'+i))+".tar")
			assert.NilError(t, os.WriteFile(p, c.Data, 0o600))
			out, errOut, code := run(t, nil, "backup", "verify", p)
			assert.Equal(t, code, 1)
			assert.Assert(t, is.Contains(errOut, p+" is not a valid backup: 1 problem found"))
			var problems []string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, c.Want) {
					problems = append(problems, l)
				}
			}
			assert.Equal(t, len(problems), 1, "the problem, in one line:\n%s", out)
		})
	}
}

// backup restore refuses each backup of the corpus before it changes or
// stops anything: the target keeps its tables and rows, even with --force.
func TestRestoreRefusesUnrestorableBackupsBeforeChangingAnything(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	for i, c := range backuptest.UnrestorableBackups(t) {
		p := filepath.Join(fx.dir, "bad-"+string(rune('a'+i))+".tar")
		assert.NilError(t, os.WriteFile(p, c.Data, 0o600))
		_, errOut, code := run(t, nil, append([]string{"backup", "restore", p, "--dtr-version", "2.9.4", "--force"}, fx.flags()...)...)
		assert.Equal(t, code, 1, "%s: %s", c.Name, errOut)
		assert.Assert(t, is.Contains(errOut, c.Want), c.Name)
		assert.Assert(t, is.Contains(errOut, "it did not verify (1 problem, listed above); nothing was changed"), c.Name)
		assert.Assert(t, !strings.Contains(errOut, "stopping") && !strings.Contains(errOut, "safety backup"), "%s: %s", c.Name, errOut)
	}
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
}
