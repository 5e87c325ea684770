package imagearchive

import (
	"bytes"
	"io"
	"math/rand"
	"testing"

	"gotest.tools/v3/assert"
)

// A seekBuffer reads and seeks as the file under it does, whatever mix of
// reads and seeks comes, inside its buffer or past it.
func TestSeekBufferIsTheFile(t *testing.T) {
	data := make([]byte, 200_000)
	rand.New(rand.NewSource(1)).Read(data)
	rnd := rand.New(rand.NewSource(2))
	for round := range 50 {
		ref := bytes.NewReader(data)
		sb, err := newSeekBuffer(bytes.NewReader(data), 1+rnd.Intn(8192))
		assert.NilError(t, err)
		for step := range 300 {
			switch rnd.Intn(4) {
			case 0, 1:
				n := rnd.Intn(3000)
				if rnd.Intn(10) == 0 {
					n = 20_000 // past the buffer: read directly
				}
				want, got := make([]byte, n), make([]byte, n)
				wn, werr := io.ReadFull(ref, want)
				gn, gerr := io.ReadFull(sb, got)
				assert.Equal(t, gn, wn, "round %d step %d", round, step)
				assert.Equal(t, gerr, werr, "round %d step %d", round, step)
				assert.Assert(t, bytes.Equal(got[:gn], want[:wn]), "round %d step %d", round, step)
			case 2:
				off := int64(rnd.Intn(6000) - 1000)
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
