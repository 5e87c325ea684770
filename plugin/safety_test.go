package plugin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
)

func TestSafetyOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(file, nil, 0o600))
	assert.ErrorContains(t, (&safetyOptions{dir: dir, skip: true, encryption: "same"}).validate(), "contradict")
	assert.ErrorContains(t, (&safetyOptions{dir: file, encryption: "same"}).validate(), "is not a directory")
	err := (&safetyOptions{encryption: "clear"}).validate()
	assert.ErrorContains(t, err, `--safety-encryption "clear": expected "same" or "none"`)
	assert.Equal(t, exitcode.Of(err, false), exitcode.Usage)
	assert.NilError(t, (&safetyOptions{encryption: "none"}).validate())

	// Like the backup, unless none; nothing for a backup in clear.
	sealed := &backupfile.Input{Protection: &backupfile.Protection{How: "encrypted with the backup's passphrase"}}
	assert.Equal(t, (&safetyOptions{encryption: "same"}).seal(sealed), sealed.Protection)
	assert.Assert(t, (&safetyOptions{encryption: "none"}).seal(sealed) == nil)
	assert.Assert(t, (&safetyOptions{encryption: "same"}).seal(&backupfile.Input{}) == nil)
}

func TestByHandQuotes(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dcli, err := command.NewDockerCli()
	assert.NilError(t, err)
	tgt := &targetOptions{}
	tgt.direct.Addr = "127.0.0.1:28015"
	tgt.direct.CAFile = "/etc/dtr ca.pem"
	dec := decryptOptions{passphraseFile: "/etc/dtr/pass", identityFile: "/etc/dtr/key.asc"}
	got := byHand(dcli, tgt, dec, "", "/backups/it's.tar")
	assert.Equal(t, got, `docker dtr backup restore --yes --no-safety-backup --rethinkdb-addr 127.0.0.1:28015 --rethinkdb-ca '/etc/dtr ca.pem' --allow-version-mismatch '/backups/it'\''s.tar'`)
	// An encrypted safety backup is read with the backup's own secrets.
	got = byHand(dcli, tgt, dec, "", "/backups/safety.tar.gpg")
	assert.Equal(t, got, `docker dtr backup restore --yes --no-safety-backup --rethinkdb-addr 127.0.0.1:28015 --rethinkdb-ca '/etc/dtr ca.pem' --allow-version-mismatch --passphrase-file /etc/dtr/pass --identity-file /etc/dtr/key.asc /backups/safety.tar.gpg`)
}
