//go:build unix

package jsonl

import (
	"os"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
)

// The spool, which lists every entry of a backup, is a 0600 file whatever
// the umask, and has no name to be found by.
func TestSpoolIsPrivateAndRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	s, err := NewSpool()
	assert.NilError(t, err)
	st, err := s.f.Stat()
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.NilError(t, s.Add(entry{Name: "x"}))
	ents, err := os.ReadDir(tmp)
	assert.NilError(t, err)
	assert.Equal(t, len(ents), 0)
	s.Close()
	s.Close() // twice: no effect
}
