//go:build unix

package jsonl

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
)

// The spool, which lists every entry of a backup, is a 0600 file whatever
// the umask, and is gone once closed.
func TestSpoolIsPrivateAndRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	s, err := NewSpool()
	assert.NilError(t, err)
	name := s.f.Name()
	st, err := os.Stat(name)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.NilError(t, s.Add(entry{Name: "x"}))
	s.Close()
	_, err = os.Stat(name)
	assert.Assert(t, errors.Is(err, os.ErrNotExist))
	s.Close() // twice: no effect
}
