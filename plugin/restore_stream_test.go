package plugin

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker/cli/cli/command"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A restore of an encrypted metadata backup decrypts it anew for each
// pass (the check, the load, the key check) and writes no plaintext: with
// $TMPDIR missing, where no temporary file can be made, the restore,
// --undo from an encrypted safety backup, and --resume of a killed
// restore all work, and bring the data back. (Writing a safety backup
// spools its manifest, names and digests, in $TMPDIR, as backup create
// does: pkg/restore's TestSafetyBackupCheckedAsItIsDecrypted checks one
// without $TMPDIR.)
func TestRestoreEncryptedWritesNoPlaintext(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	backedUp := dtrtest.Snapshot(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	sealed := filepath.Join(fx.dir, "backup-metadata.tar.gpg")
	create := append([]string{"backup", "create", "-q", "--dtr-version", "2.9.4", "--encrypt", "--passphrase-file", pass}, fx.flags()...)
	_, errOut, code := run(t, nil, append(create, "-o", sealed)...)
	assert.Equal(t, code, 0, errOut)
	_, err := r.DB("dtr2").Table("tags").Delete().RunWrite(fx.driver)
	assert.NilError(t, err)
	changed := dtrtest.Snapshot(t, fx.driver)
	// What a restore replacing the tables would have saved.
	safety := filepath.Join(t.TempDir(), "safety.tar.gpg")
	_, errOut, code = run(t, nil, append(create, "-o", safety)...)
	assert.Equal(t, code, 0, errOut)
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))

	restore := func(extra ...string) (string, int) {
		t.Helper()
		_, errOut, code := run(t, nil, append(append([]string{"backup", "restore", "--force", "--passphrase-file", pass}, extra...), fx.flags()...)...)
		return errOut, code
	}
	errOut, code = restore("--dtr-version", "2.9.4", "--progress", "plain", "--no-safety-backup", sealed)
	assert.Equal(t, code, 0, errOut)
	assert.Check(t, is.Contains(errOut, "verifying "+sealed+" as it is decrypted"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), backedUp)

	// --undo of a killed restore puts the encrypted safety backup back.
	store := journal.FileStore{Path: journal.DirectPath(cfg, fx.addr)}
	saveKilledRestore(t, store, sealed, safety, "encrypted with the backup's passphrase", changed)
	errOut, code = restore("--undo")
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), changed)

	// --resume of a killed restore loads the encrypted backup again: the
	// journal holds the sha256 of its content.
	saveKilledRestore(t, store, sealed, safety, "encrypted with the backup's passphrase", changed)
	rec, err := store.Load(context.Background())
	assert.NilError(t, err)
	rec.BackupSHA256 = contentSHA256(t, sealed, pass)
	assert.NilError(t, store.Remove(context.Background()))
	assert.NilError(t, store.Save(context.Background(), rec))
	errOut, code = restore("--resume")
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), backedUp)
	got, err := store.Load(context.Background())
	assert.Check(t, got == nil && err == nil, "the journal stayed: %v %v", got, err)
}

// contentSHA256 is the sha256 of the content of the encrypted backup at
// path, as a restore's journal records it.
func contentSHA256(t *testing.T, path, pass string) string {
	t.Helper()
	pw, err := os.ReadFile(pass)
	assert.NilError(t, err)
	in, err := backupfile.Open(path, backupfile.OpenOptions{Passphrase: func(string) ([]byte, error) { return bytes.TrimSpace(pw), nil }})
	assert.NilError(t, err)
	defer in.Close()
	sum, err := in.SHA256()
	assert.NilError(t, err)
	return sum
}

// A backup changed in place between the check and the load (here while
// the restore asks on a terminal, after it has verified the backup) into
// another valid backup is not loaded as if it had been verified: the load
// fails at its end, and what it replaced is put back from the safety
// backup. Encrypted (another message for the same passphrase) or not.
func TestRestoreRefusesABackupChangedAfterItsCheck(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the restore's journal
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	create := func(path string, extra ...string) {
		t.Helper()
		_, errOut, code := run(t, nil, append(append([]string{"backup", "create", "-q", "--dtr-version", "2.9.4", "-o", path}, extra...), fx.flags()...)...)
		assert.Equal(t, code, 0, errOut)
	}
	enc := []string{"--encrypt", "--passphrase-file", pass}
	create(filepath.Join(fx.dir, "first.tar.gpg"), enc...)
	create(filepath.Join(fx.dir, "first.tar"))
	_, err := r.DB("dtr2").Table("tags").Delete().RunWrite(fx.driver)
	assert.NilError(t, err)
	create(filepath.Join(fx.dir, "other.tar.gpg"), enc...)
	create(filepath.Join(fx.dir, "other.tar"))
	_, err = r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-both-backups"}).RunWrite(fx.driver)
	assert.NilError(t, err)
	before := dtrtest.Snapshot(t, fx.driver)

	for _, ext := range []string{".tar.gpg", ".tar"} {
		backup := filepath.Join(fx.dir, "first"+ext)
		other, err := os.ReadFile(filepath.Join(fx.dir, "other"+ext))
		assert.NilError(t, err)
		orig, err := os.ReadFile(backup)
		assert.NilError(t, err)
		errOut, code := runAtPrompt(t, func() {
			// In place: the restore's open file reads the new content.
			assert.NilError(t, os.WriteFile(backup, other, 0o600))
		}, append([]string{"backup", "restore", "--dtr-version", "2.9.4", "--passphrase-file", pass, "--safety-dir", t.TempDir(), backup}, fx.flags()...)...)
		assert.Equal(t, code, 1, errOut)
		assert.Check(t, is.Contains(lastLine(errOut), "the tables it replaced were put back"), ext)
		assert.Check(t, is.Contains(lastLine(errOut), "the backup changed since it was checked"), ext)
		assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
		assert.NilError(t, os.WriteFile(backup, orig, 0o600))
	}
}

// runAtPrompt runs the command on a pseudo-terminal; when it asks to go
// ahead, atPrompt runs and the answer is yes.
func runAtPrompt(t *testing.T, atPrompt func(), args ...string) (string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	assert.NilError(t, err)
	defer ptmx.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptmx)
	var out bytes.Buffer
	errb := &lockedBuffer{}
	dcli, err := command.NewDockerCli(command.WithInputStream(tty), command.WithOutputStream(&out), command.WithErrorStream(errb))
	assert.NilError(t, err)
	done := make(chan int)
	go func() { done <- execute(dcli, &out, errb, args) }()
	for {
		select {
		case code := <-done:
			t.Fatalf("the command ended (%d) before it asked: %s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if strings.Contains(errb.String(), "[y/N] ") {
			break
		}
	}
	atPrompt()
	_, err = ptmx.Write([]byte("y\n"))
	assert.NilError(t, err)
	code := <-done
	return errb.String(), code
}

// lockedBuffer is a buffer written by a command and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
