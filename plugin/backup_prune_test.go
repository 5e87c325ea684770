package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The command's flags, output and exit status; pkg/prune's tests check its
// decisions.
func TestPruneCommand(t *testing.T) {
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv)
	dir := backuptest.PruneDir(t)
	before := backuptest.DirNames(t, dir)

	out, errOut, code := run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--dry-run", "--format", "json")
	assert.Equal(t, code, 0, errOut)
	var res struct {
		DryRun  bool `json:"dryRun"`
		Removed int  `json:"removed"`
		Files   []struct {
			File   string `json:"file"`
			Action string `json:"action"`
			Reason string `json:"reason"`
		} `json:"files"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &res), out)
	assert.Assert(t, res.DryRun)
	assert.Equal(t, res.Removed, 0)
	assert.Equal(t, len(res.Files), len(before))
	assert.Equal(t, res.Files[0].File, "meta-3.tar", "the metadata series first, newest first")
	assert.DeepEqual(t, backuptest.DirNames(t, dir), before)

	// The table, for people, says the same.
	out, _, code = run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--dry-run", "-q")
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, "ACTION"))
	assert.Assert(t, is.Regexp(`(?m)^REMOVE +meta-1\.tar +metadata +2026-11-21 12:00:00 `, out))
	assert.Assert(t, is.Regexp(`(?m)^SKIP +meta-0\.tar\.gpg +- +- +encrypted: give --passphrase-file, --identity-file or \$DTR_BACKUP_PASSPHRASE to read its manifest`, out))
	assert.Assert(t, is.Regexp(`(?m)^SKIP +notes\.txt +- +- +not a readable docker-dtr backup`, out))
	assert.Assert(t, is.Regexp(`(?m)^REMOVE +\.img-4\.tar\.tmp-123 +- +- +the temporary file of a backup that was killed$`, out))
	assert.Assert(t, is.Contains(out, "dry run: 1 backup and 1 temporary file of a killed backup would be removed"))
	assert.DeepEqual(t, backuptest.DirNames(t, dir), before)

	// --passphrase-file reads the encrypted one, which goes too.
	out, errOut, code = run(t, nil, "backup", "prune", dir, "--keep-last", "1", "--passphrase-file", filepath.Join(cryptTestdata, "passphrase.txt"))
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, "removed 3 backups and 1 temporary file of a killed backup"))
	assert.Assert(t, is.Contains(errOut, "decrypting"))
	assert.Assert(t, !strings.Contains(strings.Join(backuptest.DirNames(t, dir), " "), "meta-0.tar.gpg"))

	// What is left still restores: the incremental's chain is whole.
	_, errOut, code = run(t, nil, "backup", "verify", filepath.Join(dir, "img-3.tar"))
	assert.Equal(t, code, 0, errOut)
}

func TestPruneUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(file, nil, 0o600))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{dir}, 2, "give at least one of --keep-last, --keep-daily, --keep-weekly above 0"},
		{[]string{dir, "--keep-last", "0"}, 2, "give at least one of"},
		{[]string{dir, "--keep-daily", "-1"}, 2, "--keep-daily -1: give a count of 0 or more"},
		{[]string{"--keep-last", "1"}, 2, "requires a directory DIR of backups"},
		{[]string{dir, "--keep-last", "x"}, 2, "--keep-last"},
		{[]string{file, "--keep-last", "1"}, 1, file + " is not a directory"},
		{[]string{filepath.Join(dir, "nope"), "--keep-last", "1"}, 1, "cannot read the backup directory"},
		{[]string{dir, "--keep-last", "1", "--format", "yaml"}, 2, `--format "yaml"`},
	} {
		out, errOut, code := run(t, nil, append([]string{"backup", "prune"}, tc.args...)...)
		assert.Equal(t, code, tc.code, "%v: %s", tc.args, errOut)
		assert.Assert(t, is.Contains(errOut, tc.want), "%v", tc.args)
		assert.Equal(t, out, "", "%v", tc.args)
		if tc.code == 1 {
			assert.Equal(t, strings.Count(errOut, "\n"), 1, "one line: %q", errOut)
		}
	}
	assert.DeepEqual(t, backuptest.DirNames(t, dir), []string{"f"})
}
