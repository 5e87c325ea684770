package imagevolume

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The listing is read entry by entry up to its end line; what follows is
// the tar, left in the reader. A cut or foreign listing is an error.
func TestReadListing(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(`{"name":"","type":"dir"}
{"name":"a","type":"file","size":3,"mtime":5}
{"type":"end"}
TAR`))
	var got []agent.ListEntry
	assert.NilError(t, readListing(br, func(e agent.ListEntry) { got = append(got, e) }))
	assert.DeepEqual(t, got, []agent.ListEntry{{Type: "dir"}, {Name: "a", Type: "file", Size: 3, MTime: 5}})
	rest, _ := io.ReadAll(br)
	assert.Equal(t, string(rest), "TAR")

	err := readListing(bufio.NewReader(strings.NewReader(`{"name":"a","type":"dir"}`+"\n")), func(agent.ListEntry) {})
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	err = readListing(bufio.NewReader(strings.NewReader("usage: docker dtr agent\n")), func(agent.ListEntry) {})
	assert.Assert(t, is.ErrorContains(err, "is --agent-binary a docker-dtr of this version?"))
	err = readListing(bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 30<<10)+"\n"), 256<<10), func(agent.ListEntry) {})
	assert.Assert(t, is.ErrorContains(err, "a line over 24 KiB"))
}

// What the agent reads back: its own parser takes it, and a name it could
// not read on a line is not sent (that file is then read whole).
func TestOmitList(t *testing.T) {
	omit, err := agent.ReadOmit(bufio.NewReader(strings.NewReader(string(omitList(map[string]int64{"a/data": 7, "b\nc": 1, "d e": 2})))))
	assert.NilError(t, err)
	assert.DeepEqual(t, omit, map[string]int64{"a/data": 7, "d e": 2})
}

// A bucket's send starts with DTR's settings; anything else is an agent
// of another version, and a stream that ends before it an agent that
// failed.
func TestReadStorage(t *testing.T) {
	b, err := readStorage(bufio.NewReader(strings.NewReader(`{"name":"","type":"storage","storage":{"driver":"s3","bucket":"images"}}` + "\n" + `{"name":"","type":"dir"}` + "\n")))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(b, dtrstorage.Backend{Driver: "s3", Bucket: "images"}))

	_, err = readStorage(bufio.NewReader(strings.NewReader(`{"name":"","type":"dir"}` + "\n")))
	assert.Check(t, is.ErrorContains(err, "is not DTR's storage settings (is --agent-binary a docker-dtr of this version?)"))
	_, err = readStorage(bufio.NewReader(strings.NewReader(`{"name":"","type":"stor`)))
	assert.Check(t, is.ErrorIs(err, io.ErrUnexpectedEOF))

	assert.Check(t, chooseStorage(omitNothing{}, b))
	assert.Check(t, is.ErrorContains(chooseStorage(omitNothing{}, dtrstorage.Backend{Driver: "filesystem"}), "not an s3 bucket"))
}
