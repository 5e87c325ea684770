package imagevolume

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker/docker/pkg/stdcopy"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// attached is an agent's attach stream: what it wrote to stdout and
// stderr, in frames, as the engine sends it.
func attached(stdout, stderr []string) io.Reader {
	var b bytes.Buffer
	out, errs := stdcopy.NewStdWriter(&b, stdcopy.Stdout), stdcopy.NewStdWriter(&b, stdcopy.Stderr)
	for i := range max(len(stdout), len(stderr)) {
		if i < len(stderr) {
			errs.Write([]byte(stderr[i]))
		}
		if i < len(stdout) {
			out.Write([]byte(stdout[i]))
		}
	}
	return &b
}

type told struct {
	n   int
	u   agent.Usage
	err error
}

func (t *told) sized(u agent.Usage, err error) { t.n, t.u, t.err = t.n+1, u, err }

// read is measure.read to its end, with what it told held.
func (m *measure) readAll(stdout, stderr []string) error {
	held := make(chan error, 1)
	m.read("docker-dtr-images-x", attached(stdout, stderr), held)
	return <-held
}

const heldLine = agent.LeaseHeld + "\n"

func TestMeasureFromTheLeaseAgent(t *testing.T) {
	// The lease held, then the sizes' line, in pieces, then the lease's
	// own end: told once.
	var got told
	assert.NilError(t, newMeasure(got.sized).readAll([]string{heldLine + `{"files":3,"bytes":`, `100,"stream":4096}` + "\n", "more\n"}, nil))
	assert.Equal(t, got.n, 1)
	assert.NilError(t, got.err)
	assert.DeepEqual(t, got.u, agent.Usage{Files: 3, Bytes: 100, Stream: 4096})

	// The measure failed: its line on stderr, at once; the lease holds.
	got = told{}
	assert.NilError(t, newMeasure(got.sized).readAll([]string{heldLine}, []string{"agent: --du /storage: permission denied\n"}))
	assert.Equal(t, got.n, 1)
	assert.Error(t, got.err, "the agent in helper docker-dtr-images-x: --du /storage: permission denied")

	// Not a docker-dtr of this version: a lease that prints nothing, or
	// prints something else, holds nothing and measures nothing.
	got = told{}
	assert.Error(t, newMeasure(got.sized).readAll(nil, nil), "the agent in helper docker-dtr-images-x ended before it held the lease: it printed nothing")
	assert.Error(t, got.err, "the agent in helper docker-dtr-images-x ended before it measured the volume: it printed nothing")
	got = told{}
	err := newMeasure(got.sized).readAll([]string{"hello\n"}, nil)
	assert.Assert(t, is.ErrorContains(err, `printed "hello", not that it holds the lease`))
	assert.Assert(t, is.ErrorContains(got.err, `printed "hello", not that it holds the lease`))
	// An agent that dies at once says why on stderr.
	got = told{}
	err = newMeasure(got.sized).readAll(nil, []string{"agent: boom\n"})
	assert.Error(t, err, "the agent in helper docker-dtr-images-x ended before it held the lease: agent: boom")
	assert.Equal(t, got.n, 1)

	// Once the read has ended, nothing more is told.
	got = told{}
	m := newMeasure(got.sized)
	m.end()
	assert.NilError(t, m.readAll([]string{heldLine + `{"files":3}` + "\n"}, nil))
	m.tell(agent.Usage{}, errors.New("late"))
	assert.Equal(t, got.n, 0)

	// No Sized: nothing to measure, nothing to tell, but the lease held.
	var none *measure = newMeasure(nil)
	assert.NilError(t, none.readAll([]string{heldLine, `{"files":3}` + "\n"}, nil))
	none.tell(agent.Usage{}, errors.New("ignored"))
	none.end()
}

// lines hands over each line however the writes cut it, and keeps the
// one that ended it.
func TestLines(t *testing.T) {
	var got []string
	l := &lines{line: func(s string) bool { got = append(got, s); return len(got) < 3 }}
	for _, w := range []string{"a", "b\nc\n", "\nd", "e\nf\n"} {
		n, err := l.Write([]byte(w))
		assert.NilError(t, err)
		assert.Equal(t, n, len(w))
	}
	assert.DeepEqual(t, got, []string{"ab", "c", ""})
	assert.Equal(t, l.buf.String(), "")
	long := &lines{line: func(string) bool { return false }}
	long.Write(bytes.Repeat([]byte("x"), 10<<10))
	assert.Equal(t, long.buf.Len(), 4<<10)
}
