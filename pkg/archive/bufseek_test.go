package archive

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

// A bufSeeker reads and seeks as the file under it does, whatever mix of
// reads and seeks comes, inside its buffer or past it.
func TestBufSeekerIsTheFile(t *testing.T) {
	data := make([]byte, 3<<20) // past the 1 MiB buffer
	rand.New(rand.NewSource(1)).Read(data)
	p := filepath.Join(t.TempDir(), "f")
	assert.NilError(t, os.WriteFile(p, data, 0o600))
	rnd := rand.New(rand.NewSource(2))
	for round := range 50 {
		ref := bytes.NewReader(data)
		f, err := os.Open(p)
		assert.NilError(t, err)
		defer f.Close()
		sb, err := NewFileSeeker(f)
		assert.NilError(t, err)
		for step := range 300 {
			switch rnd.Intn(4) {
			case 0, 1:
				n := rnd.Intn(3000)
				if rnd.Intn(10) == 0 {
					n = 1<<20 + rnd.Intn(1000) // the buffer's size or more: read directly
				}
				want, got := make([]byte, n), make([]byte, n)
				wn, werr := io.ReadFull(ref, want)
				gn, gerr := io.ReadFull(sb, got)
				assert.Equal(t, gn, wn, "round %d step %d", round, step)
				assert.Equal(t, gerr, werr, "round %d step %d", round, step)
				assert.Assert(t, bytes.Equal(got[:gn], want[:wn]), "round %d step %d", round, step)
			case 2:
				off := int64(rnd.Intn(6000) - 1000)
				if rnd.Intn(10) == 0 {
					off = int64(rnd.Intn(4<<20) - 2<<20) // past the buffer, either way
				}
				wp, werr := ref.Seek(off, io.SeekCurrent)
				gp, gerr := sb.Seek(off, io.SeekCurrent)
				if werr != nil {
					assert.Assert(t, gerr != nil, "round %d step %d: seek %d", round, step, off)
					continue
				}
				assert.NilError(t, gerr)
				assert.Equal(t, gp, wp, "round %d step %d", round, step)
			case 3:
				off := int64(rnd.Intn(len(data) + 100))
				wp, _ := ref.Seek(off, io.SeekStart)
				gp, err := sb.Seek(off, io.SeekStart)
				assert.NilError(t, err)
				assert.Equal(t, gp, wp, "round %d step %d", round, step)
			}
		}
	}
}
