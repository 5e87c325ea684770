package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func writeSampleStream(t *testing.T, n int) []byte {
	t.Helper()
	return writeSampleWith(t, n, func(w io.Writer, info Info, defs Definitions) (sampleWriter, error) {
		return NewStreamWriter(w, info, defs)
	})
}

// A document stream replayed is the archive the dump would have written
// itself, byte for byte, and a fraction of its size.
func TestReplayIsTheArchive(t *testing.T) {
	want := writeSample(t, 500)
	stream := writeSampleStream(t, 500)
	var got bytes.Buffer
	m, err := Replay(bytes.NewReader(stream), &got)
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(got.Bytes(), want), "the replayed archive differs from the one written directly")
	assert.Check(t, is.Equal(m.Tables[1].Rows, int64(500)))
	assert.Check(t, is.Equal(verifyBytes(t, got.Bytes()).Rows, int64(1500)))
	assert.Check(t, len(stream)*4 < len(want), "the stream is %d bytes, the archive %d", len(stream), len(want))
}

// A stream cut anywhere is ErrStreamCut, never an archive; one that is
// not a document stream says so.
func TestReplayCut(t *testing.T) {
	stream := writeSampleStream(t, 20)
	for _, n := range []int{0, 5, len(DocStreamMagic), len(DocStreamMagic) + 1, len(stream) / 2, len(stream) - 1} {
		_, err := Replay(bytes.NewReader(stream[:n]), io.Discard)
		assert.Check(t, errors.Is(err, ErrStreamCut), "cut at %d: %v", n, err)
	}
	_, err := Replay(strings.NewReader("{\"not\": \"a stream\"}\n......"), io.Discard)
	assert.Check(t, is.ErrorContains(err, "not a document stream"))
}

// The stream writer refuses what the archive writer refuses, where the
// dump runs.
func TestStreamWriterChecks(t *testing.T) {
	tables := sampleTables()
	_, err := NewStreamWriter(io.Discard, Info{DTRVersion: "nine"}, Definitions{Tables: tables})
	assert.Check(t, is.ErrorContains(err, "invalid DTR version"))
	sw, err := NewStreamWriter(io.Discard, Info{DTRVersion: "2.9.4", Started: testStarted}, Definitions{Tables: tables})
	assert.NilError(t, err)
	assert.Check(t, is.ErrorContains(sw.WriteDocument([]byte("{}")), "before any table"))
	assert.Check(t, is.ErrorContains(sw.BeginTable(tables[1]), "is not the next table"))
	assert.NilError(t, sw.BeginTable(tables[0]))
	assert.Check(t, is.ErrorContains(sw.WriteDocument(make([]byte, MaxDocumentSize+1)), "over the"))
	_, err = sw.Finish(nil, testStarted)
	assert.Check(t, is.ErrorContains(err, "1 of 3 tables written"))
}
