package passphrase

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

type notTerminal struct{ *strings.Reader }

func (notTerminal) FD() uintptr      { return 0 }
func (notTerminal) IsTerminal() bool { return false }

func TestSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pass")
	assert.NilError(t, os.WriteFile(file, []byte("correct horse\r\nsecond line\n"), 0o600))
	empty := filepath.Join(dir, "empty")
	assert.NilError(t, os.WriteFile(empty, []byte("\nsecond line\n"), 0o600))
	in := notTerminal{strings.NewReader("")}

	t.Setenv(Env, "from the environment")
	p, err := Source{File: file, In: in, What: "b.tar"}.Get()
	assert.NilError(t, err)
	assert.Equal(t, string(p), "correct horse", "the file first, its first line")
	p, err = Source{In: in, What: "b.tar"}.Get()
	assert.NilError(t, err)
	assert.Equal(t, string(p), "from the environment")
	assert.Assert(t, Available(""))

	_, err = Source{File: empty, In: in}.Get()
	assert.ErrorContains(t, err, "its first line is empty")
	t.Setenv(Env, "")
	_, err = Source{In: in}.Get()
	assert.ErrorContains(t, err, "is set but empty")
	os.Unsetenv(Env)
	assert.Assert(t, !Available(""))
	_, err = Source{In: in, What: "b.tar"}.Get()
	assert.Error(t, err, "b.tar needs a passphrase: give --passphrase-file FILE, set $DTR_BACKUP_PASSPHRASE, or run on a terminal")
}
