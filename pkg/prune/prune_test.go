package prune

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/retention"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// plan runs MakePlan on dir and returns it, each file's decision as
// "action: rules or reason", and what it printed.
func plan(t *testing.T, dir string, policy retention.Policy, secret bool) (*Plan, map[string]string, string) {
	t.Helper()
	var log bytes.Buffer
	prog := progress.NewMode(&log, progress.Plain)
	pl, err := MakePlan(Options{
		Dir: dir, Policy: policy, Progress: prog,
		Open: func(path string) (*backupfile.Input, error) {
			return backupfile.Open(path, backupfile.OpenOptions{Log: prog.Step, Passphrase: func(string) ([]byte, error) { return backuptest.Passphrase, nil }})
		},
		CanDecrypt: secret,
		NoSecret:   "encrypted: no secret",
	})
	assert.NilError(t, err)
	got := map[string]string{}
	for _, e := range pl.Entries {
		why := e.Reason
		if e.Action == Keep {
			why = strings.Join(e.Rules, "; ")
		}
		got[e.File] = e.Action + ": " + why
	}
	return pl, got, log.String()
}

func entry(pl *Plan, file string) *Entry {
	for _, e := range pl.Entries {
		if e.File == file {
			return e
		}
	}
	return nil
}

func TestPlanWithoutSecrets(t *testing.T) {
	dir := backuptest.PruneDir(t)
	before := backuptest.DirNames(t, dir)
	pl, got, log := plan(t, dir, retention.Policy{Last: 1}, false)
	assert.DeepEqual(t, backuptest.DirNames(t, dir), before) // a plan changes nothing

	want := map[string]string{
		"meta-3.tar":     "keep: last 1",
		"meta-2.tar":     "keep: newest verified",
		"meta-1.tar":     "remove: no rule keeps it",
		"meta-0.tar.gpg": "skip: encrypted: no secret",
		// An unreadable encrypted file could be an incremental backup.
		"img-3.tar": "keep: last 1; DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
		"img-2.tar": "keep: DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
		"img-1.tar": "keep: needed by img-3.tar; DIR holds an encrypted file that could not be read (meta-0.tar.gpg), perhaps an incremental backup that needs it",
	}
	for file, w := range want {
		assert.Equal(t, got[file], w, file)
	}
	// A killed run's temporary file goes, even without secrets.
	assert.Equal(t, got[".img-4.tar.tmp-123"], "remove: the temporary file of a backup that was killed")
	for _, file := range []string{"notes.txt", "foreign.tar", "dtr-official.tar", "old", "latest.tar"} {
		assert.Assert(t, strings.HasPrefix(got[file], "skip: "), "%s: %s", file, got[file])
	}
	assert.Assert(t, is.Contains(got["dtr-official.tar"], "docker/dtr backup archive"))
	assert.Assert(t, is.Contains(got["foreign.tar"], "docker-dtr-images.jsonl"))
	assert.Assert(t, is.Contains(got["old"], "a directory"))
	assert.Assert(t, is.Contains(got["latest.tar"], "a symbolic link"))
	v := entry(pl, "meta-3.tar").Verified
	assert.Assert(t, v != nil && !*v, "the damaged newest failed verify")
	v = entry(pl, "meta-2.tar").Verified
	assert.Assert(t, v != nil && *v)
	assert.Assert(t, is.Contains(log, "meta-3.tar does not pass verify"))
}

func TestPlanAndExecute(t *testing.T) {
	dir := backuptest.PruneDir(t)
	pl, got, log := plan(t, dir, retention.Policy{Last: 1}, true)
	assert.Equal(t, got["meta-0.tar.gpg"], "remove: no rule keeps it", "decrypted, read, and old")
	assert.Equal(t, got["img-2.tar"], "remove: no rule keeps it")
	assert.Equal(t, got["img-1.tar"], "keep: needed by img-3.tar")
	assert.Equal(t, got["img-3.tar"], "keep: last 1; newest verified", "its chain verified")
	assert.Assert(t, is.Contains(log, "decrypting"))
	assert.Equal(t, pl.Execute(progress.NewMode(&bytes.Buffer{}, progress.Quiet)), 0)
	assert.DeepEqual(t, backuptest.DirNames(t, dir), []string{"dtr-official.tar", "foreign.tar", "img-1.tar", "img-3.tar", "latest.tar", "meta-2.tar", "meta-3.tar", "notes.txt", "old"})

	// Again: nothing more to remove, though the newest is verified again.
	pl, _, log = plan(t, dir, retention.Policy{Last: 1}, true)
	for _, e := range pl.Entries {
		assert.Assert(t, e.Action != Remove, e.File)
	}
	assert.Assert(t, is.Contains(log, "verifying"), "meta-2 would go if meta-3 passed: %s", log)

	// A policy that removes nothing reads no backup in full.
	_, _, log = plan(t, dir, retention.Policy{Last: 5}, true)
	assert.Assert(t, !strings.Contains(log, "verifying"), log)
}

// Encrypted backups of both kinds, an incremental chain among them, are
// read and verified as they are decrypted: with $TMPDIR missing, where no
// plaintext file could be made, prune decides what it decides when they
// are in clear. (img-1, the base of img-3, stays in clear: an encrypted
// base is found only through its index, which this test does not write.)
func TestPlanOfEncryptedBackupsMakesNoPlaintextFile(t *testing.T) {
	clear := backuptest.PruneDir(t)
	sealed := backuptest.PruneDir(t)
	for _, name := range []string{"meta-1.tar", "meta-2.tar", "meta-3.tar", "img-2.tar", "img-3.tar"} {
		p := filepath.Join(sealed, name)
		backuptest.EncryptFile(t, p, p+".gpg")
		assert.NilError(t, os.Remove(p))
		assert.NilError(t, os.Chtimes(p+".gpg", backuptest.Day(5), backuptest.Day(5)))
	}
	assert.NilError(t, os.Remove(filepath.Join(sealed, "latest.tar")))
	assert.NilError(t, os.Remove(filepath.Join(clear, "latest.tar")))
	_, want, _ := plan(t, clear, retention.Policy{Last: 1}, true)

	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	pl, got, log := plan(t, sealed, retention.Policy{Last: 1}, true)
	sealedName := strings.NewReplacer("meta-1.tar", "meta-1.tar.gpg", "meta-2.tar", "meta-2.tar.gpg", "meta-3.tar", "meta-3.tar.gpg",
		"img-2.tar", "img-2.tar.gpg", "img-3.tar", "img-3.tar.gpg")
	for file, w := range want {
		assert.Check(t, is.Equal(got[sealedName.Replace(file)], sealedName.Replace(w)), file)
	}
	assert.Equal(t, got["img-3.tar.gpg"], "keep: last 1; newest verified", "its encrypted chain verified: %s", log)
	assert.Assert(t, is.Contains(log, "as it is decrypted"))
	assert.Assert(t, !strings.Contains(log, "temporary file"), log)
	assert.Equal(t, pl.Execute(progress.NewMode(&bytes.Buffer{}, progress.Quiet)), 0)
}

// The temporary file of a backup being written is skipped, and stays; a
// killed run's is removed, and other hidden files are skipped.
func TestPlanRemovesOnlyAKilledRunsTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	live, err := atomicfile.Create(filepath.Join(dir, "running.tar"))
	assert.NilError(t, err)
	defer live.Abort()
	for _, name := range []string{".killed.tar.tmp-42", ".hidden"} {
		assert.NilError(t, os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600))
	}
	pl, got, _ := plan(t, dir, retention.Policy{Last: 1}, false)
	assert.Equal(t, got[filepath.Base(live.Name())], "skip: the temporary file of a backup being written")
	assert.Equal(t, got[".killed.tar.tmp-42"], "remove: the temporary file of a backup that was killed")
	assert.Assert(t, is.Contains(got[".hidden"], "skip: a hidden file"))
	assert.Equal(t, pl.Execute(progress.NewMode(&bytes.Buffer{}, progress.Quiet)), 0)
	assert.DeepEqual(t, backuptest.DirNames(t, dir), []string{".hidden", filepath.Base(live.Name())})
}

func TestPlanDailyAndWeekly(t *testing.T) {
	dir := t.TempDir()
	// Two a day for six days: the evening backup of each day is the one kept.
	for d := range 6 {
		backuptest.WriteMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d-am.tar", d)), backuptest.Day(d).Add(-3*time.Hour))
		backuptest.WriteMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d-pm.tar", d)), backuptest.Day(d).Add(6*time.Hour))
	}
	_, got, _ := plan(t, dir, retention.Policy{Daily: 3, Weekly: 2}, false)
	// 2026-11-20 is a Friday: days 0-2 are in ISO week 47, days 3-5 in 48.
	assert.Equal(t, got["m-5-pm.tar"], "keep: daily 2026-11-25; weekly 2026-W48; newest verified")
	assert.Equal(t, got["m-4-pm.tar"], "keep: daily 2026-11-24")
	assert.Equal(t, got["m-3-pm.tar"], "keep: daily 2026-11-23")
	assert.Equal(t, got["m-2-pm.tar"], "keep: weekly 2026-W47")
	for d := range 6 {
		assert.Equal(t, got[fmt.Sprintf("m-%d-am.tar", d)], "remove: no rule keeps it")
	}
	for _, d := range []int{0, 1} {
		assert.Equal(t, got[fmt.Sprintf("m-%d-pm.tar", d)], "remove: no rule keeps it")
	}
}

func TestPlanKeepsAllWhenNoneVerifies(t *testing.T) {
	dir := t.TempDir()
	for d := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("m-%d.tar", d))
		backuptest.WriteMetadataBackup(t, p, backuptest.Day(d))
		backuptest.Corrupt(t, p)
	}
	_, got, log := plan(t, dir, retention.Policy{Last: 1}, false)
	assert.Assert(t, is.Contains(log, "no metadata backup in "+dir+" passes verify"))
	for d := range 3 {
		assert.Assert(t, is.Contains(got[fmt.Sprintf("m-%d.tar", d)], "keep: "), d)
		assert.Assert(t, is.Contains(got[fmt.Sprintf("m-%d.tar", d)], "no metadata backup passes verify"), d)
	}
}

// A file changed between the plan and its execution is left alone; the
// others still go.
func TestExecuteLeavesAChangedFile(t *testing.T) {
	dir := t.TempDir()
	for d := range 4 {
		backuptest.WriteMetadataBackup(t, filepath.Join(dir, fmt.Sprintf("m-%d.tar", d)), backuptest.Day(d))
	}
	pl, _, _ := plan(t, dir, retention.Policy{Last: 2}, false)
	// Another process writes over m-0.tar once the decisions are made.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "m-0.tar"), []byte("replaced"), 0o600))
	var log bytes.Buffer
	assert.Equal(t, pl.Execute(progress.NewMode(&log, progress.Plain)), 1)
	e := entry(pl, "m-0.tar")
	assert.Equal(t, e.Error, "it changed since prune read it: left alone")
	assert.Assert(t, !e.Removed && entry(pl, "m-1.tar").Removed)
	assert.DeepEqual(t, backuptest.DirNames(t, dir), []string{"m-0.tar", "m-2.tar", "m-3.tar"})
}

// An index (FILE.index) goes with its backup, stays with a kept one, and
// goes once its backup is gone; a file named so that is not one is read
// as any other file.
func TestPlanRemovesAnIndexWithItsBackup(t *testing.T) {
	dir := backuptest.PruneDir(t)
	for _, name := range []string{"img-2.tar", "img-3.tar", "gone.tar.gpg"} {
		src := filepath.Join(dir, name)
		if name == "gone.tar.gpg" {
			src = filepath.Join(dir, "img-3.tar")
		}
		f, err := os.Open(src)
		assert.NilError(t, err)
		ix, err := imagearchive.IndexOf(f)
		f.Close()
		assert.NilError(t, err)
		x, err := imagearchive.CreateIndex(filepath.Join(dir, name), ix)
		assert.NilError(t, err)
		assert.NilError(t, x.CommitWith(func() error { return nil }))
	}
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "notes.index"), []byte("not an index\n"), 0o600))
	pl, got, _ := plan(t, dir, retention.Policy{Last: 1}, true)
	assert.Equal(t, got["img-2.tar"], "remove: no rule keeps it")
	assert.Equal(t, got["img-2.tar.index"], "remove: the index of img-2.tar, removed with it")
	assert.Equal(t, got["img-3.tar.index"], "skip: the index of img-3.tar")
	assert.Equal(t, got["gone.tar.gpg.index"], "remove: the index of gone.tar.gpg, which is gone")
	assert.Assert(t, is.Contains(got["notes.index"], "skip: not a readable docker-dtr backup"))
	assert.Equal(t, pl.Execute(progress.NewMode(&bytes.Buffer{}, progress.Quiet)), 0)
	names := backuptest.DirNames(t, dir)
	assert.Assert(t, is.Contains(names, "img-3.tar.index"))
	assert.Assert(t, is.Contains(names, "notes.index"))
	for _, gone := range []string{"img-2.tar", "img-2.tar.index", "gone.tar.gpg.index"} {
		assert.Assert(t, !is.Contains(names, gone)().Success(), "%s stays", gone)
	}
}
