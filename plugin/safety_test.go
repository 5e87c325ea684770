package plugin

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
)

func TestSafetyPathNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	o := safetyOptions{dir: dir}
	first := o.path("-", "metadata", "0123456789ab")
	assert.Assert(t, regexp.MustCompile(`/safety-metadata-0123456789ab-\d{8}T\d{6}Z\.tar$`).MatchString(first), first)
	assert.NilError(t, os.WriteFile(first, nil, 0o600))
	second := o.path("-", "metadata", "0123456789ab")
	assert.Assert(t, second != first && filepath.Dir(second) == dir, second)

	// Beside the input by default; the current directory for stdin.
	beside := (&safetyOptions{}).path("/backups/b.tar", "images", "")
	assert.Equal(t, filepath.Dir(beside), "/backups")
	assert.Assert(t, regexp.MustCompile(`safety-images-direct-`).MatchString(beside))
	assert.Equal(t, filepath.Dir((&safetyOptions{}).path("-", "images", "x")), ".")

	assert.ErrorContains(t, (&safetyOptions{dir: dir, skip: true}).validate(), "contradict")
	assert.ErrorContains(t, (&safetyOptions{dir: first}).validate(), "is not a directory")
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
