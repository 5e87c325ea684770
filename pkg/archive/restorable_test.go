package archive_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func verifyData(t *testing.T, data []byte) *archive.Report {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.tar")
	assert.NilError(t, os.WriteFile(p, data, 0o600))
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	return rep
}

// Every backup of the corpus passes its checksums but cannot be restored
// as it is: verify says why, in one problem.
func TestVerifyRefusesUnrestorableBackups(t *testing.T) {
	rep := verifyData(t, backuptest.Restorable(t))
	assert.Assert(t, rep.OK() && rep.Verified, "%v", rep.Problems)
	for _, c := range backuptest.UnrestorableBackups(t) {
		t.Run(c.Name, func(t *testing.T) {
			rep := verifyData(t, c.Data)
			var lines []string
			for _, p := range rep.Problems {
				lines = append(lines, p.String())
			}
			assert.Equal(t, len(rep.Problems), 1, "one problem: %s", strings.Join(lines, "\n"))
			assert.Assert(t, is.Contains(rep.Problems[0].String(), c.Want))
			assert.Assert(t, !rep.Verified)
			t.Log(lines[0])
		})
	}
}
