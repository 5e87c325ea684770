package plugin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
)

func TestSafetyOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	assert.NilError(t, os.WriteFile(file, nil, 0o600))
	assert.ErrorContains(t, (&safetyOptions{dir: dir, skip: true}).validate(), "contradict")
	assert.ErrorContains(t, (&safetyOptions{dir: file}).validate(), "is not a directory")
}

func TestByHandQuotes(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dcli, err := command.NewDockerCli()
	assert.NilError(t, err)
	tgt := &targetOptions{}
	tgt.direct.Addr = "127.0.0.1:28015"
	tgt.direct.CAFile = "/etc/dtr ca.pem"
	got := byHand(dcli, tgt, "", "/backups/it's.tar")
	assert.Equal(t, got, `docker dtr backup restore --yes --no-safety-backup --rethinkdb-addr 127.0.0.1:28015 --rethinkdb-ca '/etc/dtr ca.pem' --allow-version-mismatch '/backups/it'\''s.tar'`)
}
