package plugin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The flags of --resume and --undo: contradictions are wrong usage (2),
// a FILE that is not the journal's is refused before anything.
func TestJournalFlags(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--resume", "--undo"}, "--resume and --undo contradict each other: give one"},
		{[]string{"--undo", "b.tar"}, "--undo takes no FILE"},
		{[]string{"--resume", "a.tar", "b.tar"}, "requires a backup FILE"},
		{[]string{"--resume", "--dry-run"}, "--dry-run has no use with --resume or --undo"},
		{[]string{"--undo", "--no-safety-backup"}, "--safety-dir and --no-safety-backup have no use with --resume or --undo"},
		{[]string{"--resume", "--to-volume"}, "--to-volume has no use with --resume or --undo: the journal says where the restore wrote"},
		{[]string{}, "requires a backup FILE (or - for standard input), or --resume or --undo"},
	} {
		_, errOut, code := run(t, nil, append([]string{"backup", "restore", "--rethinkdb-addr", "127.0.0.1:1"}, c.args...)...)
		assert.Check(t, is.Equal(code, 2), "%v: %s", c.args, errOut)
		assert.Check(t, is.Contains(errOut, c.want), "%v", c.args)
	}
	_, errOut, code := run(t, nil, "backup", "restore", "--resume", "--rethinkdb-addr", "127.0.0.1:1")
	assert.Equal(t, code, 1, errOut)
	assert.Check(t, is.Contains(errOut, "--resume: no unfinished restore is recorded (file "))
	assert.Equal(t, strings.Count(strings.TrimSpace(errOut), "\n"), 0, "one line: %s", errOut)
}

// A metadata restore killed while it loads, in direct mode: the journal
// file it left (planted here as the kill leaves it, with a table half
// gone) refuses backups and restores with the command to run; --resume
// loads the backup again, --undo puts the safety backup back, and each
// removes the journal.
func TestJournalDirect(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	backup := filepath.Join(fx.dir, "backup.tar")
	_, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	restored := dtrtest.Snapshot(t, fx.driver)

	// What the DB held when the restore began, and its safety backup.
	_, err := r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-the-backup"}).RunWrite(fx.driver)
	assert.NilError(t, err)
	before := dtrtest.Snapshot(t, fx.driver)
	safety := filepath.Join(t.TempDir(), "safety.tar")
	_, errOut, code = run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", safety}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)

	store := journal.FileStore{Path: journal.DirectPath(cfg, fx.addr)}
	kill := func() {
		t.Helper()
		saveKilledRestore(t, store, backup, safety, "", before)
		// Killed half way: one table dropped, not yet loaded again.
		_, err := r.DB("dtr2").TableDrop("events").RunWrite(fx.driver)
		assert.NilError(t, err)
	}
	kill()

	_, errOut, code = run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", filepath.Join(fx.dir, "next.tar")}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	resume := "docker dtr backup restore --resume " + strings.Join(fx.flags(), " ")
	undo := "docker dtr backup restore --undo " + strings.Join(fx.flags(), " ")
	assert.Check(t, is.Contains(errOut, "refusing to back up: a metadata restore of "+backup+" into the database, started "))
	assert.Check(t, is.Contains(errOut, "finish it with: "+resume+", or put back what it replaced with: "+undo))
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{"backup.tar"})

	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--force", "--dtr-version", "2.9.4", backup}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	assert.Check(t, is.Contains(errOut, "refusing to restore, nothing was changed: a metadata restore of "+backup))

	other := filepath.Join(fx.dir, "other.tar")
	assert.NilError(t, os.Link(safety, other))
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--resume", other}, fx.flags()...)...)
	assert.Equal(t, code, 2, errOut)
	assert.Check(t, is.Contains(errOut, "--resume "+other+": the unfinished restore was loading "+backup+": leave FILE out, or give that one"))
	assert.NilError(t, os.Remove(other))

	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--resume", "--force", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), restored)
	rec, err := store.Load(context.Background())
	assert.Check(t, rec == nil && err == nil, "the journal stayed: %v %v", rec, err)

	// The same kill, undone: what the DB held before comes back.
	_, err = r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-the-backup"}).RunWrite(fx.driver)
	assert.NilError(t, err)
	kill()
	out, errOut, code := run(t, nil, append([]string{"backup", "restore", "--undo", "--force"}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Check(t, is.Equal(out, "undid a metadata restore of "+backup+" into the database: put back from the safety backup "+safety+"\n"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	rec, err = store.Load(context.Background())
	assert.Check(t, rec == nil && err == nil, "the journal stayed: %v %v", rec, err)

	// A safety backup changed since: --undo refuses, and the journal stays.
	kill()
	assert.NilError(t, os.WriteFile(safety, []byte("not the same"), 0o600))
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--undo", "--force"}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	assert.Check(t, is.Contains(errOut, "the safety backup "+safety+" is not the file the unfinished restore saved"))
	rec, _ = store.Load(context.Background())
	assert.Check(t, rec != nil)
}

// TestJournalEncryptedSafetyBackup: --undo of a restore whose safety
// backup is encrypted like its backup asks for the same secret before it
// changes anything, and with it puts the data back.
func TestJournalEncryptedSafetyBackup(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv) // restored by t.Setenv
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	backup := filepath.Join(fx.dir, "backup.tar.gpg")
	_, errOut, code := run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "--encrypt", "--passphrase-file", pass, "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	_, err := r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-the-backup"}).RunWrite(fx.driver)
	assert.NilError(t, err)
	before := dtrtest.Snapshot(t, fx.driver)
	safety := filepath.Join(t.TempDir(), "safety.tar.gpg")
	_, errOut, code = run(t, nil, append([]string{"backup", "create", "--dtr-version", "2.9.4", "--encrypt", "--passphrase-file", pass, "-o", safety}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)

	store := journal.FileStore{Path: journal.DirectPath(cfg, fx.addr)}
	saveKilledRestore(t, store, backup, safety, "encrypted with the backup's passphrase", before)
	_, err = r.DB("dtr2").TableDrop("events").RunWrite(fx.driver)
	assert.NilError(t, err)
	dropped := dtrtest.Snapshot(t, fx.driver)

	// Without the secret: refused before anything changes, the journal stays.
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--undo", "--force"}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	assert.Check(t, is.Contains(errOut, "the safety backup "+safety+" of the unfinished restore: "))
	assert.Check(t, is.Contains(errOut, "needs a passphrase"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), dropped)
	got, _ := store.Load(context.Background())
	assert.Check(t, got != nil)

	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--undo", "--force", "--passphrase-file", pass}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	got, err = store.Load(context.Background())
	assert.Check(t, got == nil && err == nil, "the journal stayed: %v %v", got, err)
}

// saveKilledRestore saves the journal a metadata restore of backup leaves
// when it is killed after saving safety (protected as protection says):
// it was replacing every table of before.
func saveKilledRestore(t *testing.T, store journal.FileStore, backup, safety, protection string, before map[string]dtrtest.TableSnapshot) {
	t.Helper()
	rec := &journal.Record{Kind: journal.KindMetadata, Started: time.Now().UTC().Truncate(time.Second), Backup: backup, Safety: safety, Protection: protection}
	var err error
	rec.BackupSHA256, err = journal.FileSHA256(backup)
	assert.NilError(t, err)
	rec.SafetySHA256, err = journal.FileSHA256(safety)
	assert.NilError(t, err)
	for name := range before {
		db, table, _ := strings.Cut(name, ".")
		rec.Tables = append(rec.Tables, journal.Table{DB: db, Name: table, Existed: true})
	}
	assert.NilError(t, store.Save(context.Background(), rec))
}
