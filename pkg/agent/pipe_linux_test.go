package agent

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	assert.NilError(t, err)
	defer r.Close()
	defer w.Close()
	growPipe(w)
	n, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	assert.NilError(t, err)
	assert.Equal(t, n, pipeSize)

	// Not a pipe: nothing happens, and nothing fails.
	f, err := os.CreateTemp(t.TempDir(), "out")
	assert.NilError(t, err)
	defer f.Close()
	growPipe(f)
	growPipe(&struct{}{})
}
