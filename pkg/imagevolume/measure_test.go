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

func TestMeasureFromTheLeaseAgent(t *testing.T) {
	// The sizes' line, in pieces, then the lease's own end: told once.
	var got told
	newMeasure(got.sized).read("docker-dtr-images-x", attached([]string{`{"files":3,"bytes":`, `100,"stream":4096}` + "\n", "more\n"}, nil))
	assert.Equal(t, got.n, 1)
	assert.NilError(t, got.err)
	assert.DeepEqual(t, got.u, agent.Usage{Files: 3, Bytes: 100, Stream: 4096})

	// The measure failed: its line on stderr, at once.
	got = told{}
	newMeasure(got.sized).read("docker-dtr-images-x", attached(nil, []string{"agent: --du /storage: permission denied\n"}))
	assert.Equal(t, got.n, 1)
	assert.Error(t, got.err, "the agent in helper docker-dtr-images-x: --du /storage: permission denied")

	// Not a docker-dtr of this version: a lease that prints nothing, or
	// prints something else.
	got = told{}
	newMeasure(got.sized).read("docker-dtr-images-x", attached(nil, nil))
	assert.Error(t, got.err, "the agent in helper docker-dtr-images-x ended before it measured the volume: it printed nothing")
	got = told{}
	newMeasure(got.sized).read("docker-dtr-images-x", attached([]string{"hello\n"}, nil))
	assert.Assert(t, is.ErrorContains(got.err, `printed "hello", not its sizes`))

	// Once the read has ended, nothing more is told.
	got = told{}
	m := newMeasure(got.sized)
	m.end()
	m.read("docker-dtr-images-x", attached([]string{`{"files":3}` + "\n"}, nil))
	m.tell(agent.Usage{}, errors.New("late"))
	assert.Equal(t, got.n, 0)

	// No Sized: nothing to measure, nothing to tell.
	var none *measure = newMeasure(nil)
	none.tell(agent.Usage{}, errors.New("ignored"))
	none.end()
}
