package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// writeArchive writes a small valid metadata backup with pkg/archive's
// writer, as backup create does.
func writeArchive(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	assert.NilError(t, err)
	defer f.Close()
	tables := []archive.Table{{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")}}
	archive.AssignDirs(tables)
	started := time.Now()
	w, err := archive.NewWriter(f, archive.Info{Tool: "docker-dtr e2e", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: started},
		archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	assert.NilError(t, w.BeginTable(tables[0]))
	for _, doc := range []string{`{"id":"a","value":"one"}`, `{"id":"b","value":"two"}`} {
		assert.NilError(t, w.WriteDocument([]byte(doc)))
	}
	_, err = w.Finish(nil, started.Add(time.Second))
	assert.NilError(t, err)
}

// The exit statuses each command's help documents, as the Docker CLI
// passes them on, for those that need no DTR. A lost majority (status: 1)
// is checked by TestStatus, a restore left partly done (3) by
// TestImageBackupFaults and TestFaultRestoreMetadata, an interrupted
// command (130) by the signal scenarios of the TestFault tests,
// TestImageBackupFaults and TestDatabaseHelper.
func TestDocumentedExitCodes(t *testing.T) {
	cfg := dockerConfig(t)
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.tar")
	writeArchive(t, valid)
	data, err := os.ReadFile(valid)
	assert.NilError(t, err)
	i := bytes.Index(data, []byte(`"value":"one"`))
	assert.Assert(t, i > 0)
	data[i+9] = 'X' // same size, wrong checksum
	damaged := filepath.Join(dir, "damaged.tar")
	assert.NilError(t, os.WriteFile(damaged, data, 0o600))
	notTar := filepath.Join(dir, "notes.tar")
	assert.NilError(t, os.WriteFile(notTar, []byte("not a backup\n"), 0o600))
	missing := filepath.Join(dir, "missing.tar")

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown command", []string{"dtr", "nosuch"}, 2, `unknown command "nosuch"`},
		{"unknown flag", []string{"dtr", "backup", "create", "--nosuch"}, 2, "unknown flag: --nosuch"},
		{"missing file argument", []string{"dtr", "backup", "verify"}, 2, "requires a backup FILE"},
		{"extra argument", []string{"dtr", "status", "extra"}, 2, "accepts no arguments"},
		{"restore without file", []string{"dtr", "backup", "restore"}, 2, "requires a backup FILE"},
		{"version", []string{"dtr", "version"}, 0, ""},
		{"verify valid", []string{"dtr", "backup", "verify", valid}, 0, ""},
		{"inspect valid", []string{"dtr", "backup", "inspect", valid}, 0, ""},
		{"verify damaged", []string{"dtr", "backup", "verify", damaged}, 1, damaged + " is not a valid backup"},
		{"verify not a tar", []string{"dtr", "backup", "verify", notTar}, 1, notTar},
		{"verify missing", []string{"dtr", "backup", "verify", missing}, 1, missing},
		{"inspect missing", []string{"dtr", "backup", "inspect", missing}, 1, missing},
		{"restore missing", []string{"dtr", "backup", "restore", "--dry-run", missing}, 1, missing},
		{"create without -o", []string{"dtr", "backup", "create"}, 2, "-o/--output is required"},
		{"images without -o", []string{"dtr", "backup", "images"}, 2, "-o/--output is required"},
		{"create --parallel -1", []string{"dtr", "backup", "create", "-o", filepath.Join(dir, "x.tar"), "--parallel", "-1"}, 2, "--parallel -1"},
		{"status --format yaml", []string{"dtr", "status", "--format", "yaml"}, 2, `--format "yaml"`},
		{"malformed --replica-id", []string{"dtr", "backup", "create", "-o", filepath.Join(dir, "x.tar"), "--replica-id", "XYZ"}, 2, `--replica-id "XYZ"`},
		{"contradicting safety flags", []string{"dtr", "backup", "restore", "--safety-dir", dir, "--no-safety-backup", valid}, 2, "contradict each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := docker(t, cfg, nil, tc.args...)
			assert.Equal(t, res.code, tc.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
			if tc.stderr != "" {
				assert.Assert(t, is.Contains(res.stderr, tc.stderr))
			}
		})
	}
}
