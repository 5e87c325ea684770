package refdocs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/plugin"
	"github.com/spf13/cobra"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func root() *cobra.Command { return plugin.NewRootCmd("dtr", true, nil) }

// docs/reference must be what the command tree generates today.
func TestReferenceUpToDate(t *testing.T) {
	stale, err := Stale(root(), filepath.Join("..", "..", "docs", "reference"))
	assert.NilError(t, err)
	for _, name := range stale {
		t.Errorf("docs/reference/%s is stale: run make docs", name)
	}
}

// Writing into a temporary directory gives what Stale expects, twice the
// same, without the hidden agent command, and removes pages of commands
// that are gone.
func TestWriteIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "docker_dtr_gone.md")
	assert.NilError(t, os.WriteFile(gone, []byte("old"), 0o644))
	other := filepath.Join(dir, "README.md")
	assert.NilError(t, os.WriteFile(other, []byte("kept"), 0o644))

	assert.NilError(t, Write(root(), dir))
	stale, err := Stale(root(), dir)
	assert.NilError(t, err)
	assert.Equal(t, len(stale), 0, "%v", stale)
	_, err = os.Stat(gone)
	assert.Assert(t, os.IsNotExist(err), "the page of a removed command stays")
	_, err = os.Stat(other)
	assert.NilError(t, err)
	_, err = os.Stat(filepath.Join(dir, "docker_dtr_agent.md"))
	assert.Assert(t, os.IsNotExist(err), "the hidden agent command has a page")

	for _, name := range []string{"docker_dtr.md", "docker_dtr_backup.md", "docker_dtr_backup_create.md",
		"docker_dtr_backup_verify.md", "docker_dtr_status.md", "docker_dtr_version.md"} {
		_, err := os.Stat(filepath.Join(dir, name))
		assert.NilError(t, err, "page %s", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, "docker_dtr_backup_create.md"))
	assert.NilError(t, err)
	page := string(b)
	assert.Assert(t, is.Contains(page, "```text\ndocker dtr backup create [OPTIONS]\n```"))
	assert.Assert(t, is.Contains(page, "| `-o`, `--output` | `string` |  | Write the archive to this file"))
	assert.Assert(t, is.Contains(page, "Exit status: 0 the backup was written"))
	assert.Assert(t, is.Contains(page, "docker dtr backup create -o backup-metadata.tar\n"))

	// A default under this machine's home directory is written as $HOME.
	home, err := os.UserHomeDir()
	assert.NilError(t, err)
	c := &cobra.Command{Use: "x"}
	c.Flags().String("safety-dir", filepath.Join(home, ".docker", "dtr"), "Where")
	xpage := string(Pages(c)["docker_x.md"])
	assert.Assert(t, is.Contains(xpage, "| `--safety-dir` | `string` | `$HOME/.docker/dtr` | Where |"))
	assert.Assert(t, !strings.Contains(xpage, home+"/"), xpage)

	// A changed page is named.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "docker_dtr_status.md"), []byte("edited"), 0o644))
	stale, err = Stale(root(), dir)
	assert.NilError(t, err)
	assert.DeepEqual(t, stale, []string{"docker_dtr_status.md"})
}
