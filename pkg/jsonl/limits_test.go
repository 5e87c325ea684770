package jsonl

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// endless yields the same byte for ever, counting what was read.
type endless struct {
	b byte
	n int64
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.b
	}
	e.n += int64(len(p))
	return len(p), nil
}

// A line of gigabytes is refused once it is over the limit, having read
// little more than the limit.
func TestLinesOverTheLimitStopEarly(t *testing.T) {
	src := &endless{b: 'x'}
	_, err := NewReader(src, &head{}, Limits{HeaderBytes: 1 << 20, LineBytes: 1 << 10})
	assert.Error(t, err, "manifest header: line longer than 1048576 bytes")
	assert.Assert(t, src.n < 2<<20, "read %d bytes", src.n)

	data := write(t, 1)
	header := data[:bytes.IndexByte(data, '\n')+1]
	src = &endless{b: ' '}
	r, err := NewReader(io.MultiReader(bytes.NewReader(header), src), &head{}, Limits{HeaderBytes: 1 << 10, LineBytes: 4 << 10})
	assert.NilError(t, err)
	assert.Error(t, r.Next(&entry{}), "line longer than 4096 bytes")
	assert.Assert(t, src.n < 128<<10, "read %d bytes", src.n)
}

// A header of many small values is refused by count, before decoding makes
// each a struct.
func TestHeaderValuesAreCounted(t *testing.T) {
	type table struct{ A, B, C, D string }
	var h struct{ Tables []table }
	line := `{"Tables":[` + strings.Repeat("{},", 100) + "{}]}\n"
	_, err := NewReader(strings.NewReader(line), &h, Limits{HeaderBytes: 1 << 20, HeaderValues: 100, LineBytes: 1 << 10})
	assert.Error(t, err, "manifest header: more than 100 JSON values (203)")
	_, err = NewReader(strings.NewReader(line), &h, Limits{HeaderBytes: 1 << 20, HeaderValues: 203, LineBytes: 1 << 10})
	assert.NilError(t, err)

	assert.Equal(t, CountValues([]byte(`{"a":"[{,,}]","b":[1,2,{"c":"\"[,"}]}`)), 6)
	assert.Equal(t, CountValues([]byte(`[0,0,0]`)), 3)
	assert.Equal(t, CountValues([]byte(`"\\",[`)), 2)

	// and a writer learns before it writes a header no reader would take
	assert.ErrorContains(t, CheckHeader(h, Limits{HeaderBytes: 10}), "over the 10 byte limit")
	h.Tables = make([]table, 200)
	assert.ErrorContains(t, CheckHeader(h, Limits{HeaderBytes: 1 << 20, HeaderValues: 100}), "more than 100 JSON values")
	assert.NilError(t, CheckHeader(h, Limits{HeaderBytes: 1 << 20, HeaderValues: 2000}))
}

func TestNewReaderNeedsLimits(t *testing.T) {
	_, err := NewReader(strings.NewReader("{}\n"), &head{}, Limits{})
	assert.ErrorContains(t, err, "no line limits")
}
