package imagevolume

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker/docker/pkg/stdcopy"
)

// Sized receives the volume's sizes, measured beside a read (ReadSized),
// or why they are unknown.
type Sized func(agent.Usage, error)

// measure hands a read's measure to its Sized once, and never after the
// read has ended: a measure that comes too late is no use to it.
type measure struct {
	mu    sync.Mutex
	sized Sized
}

func newMeasure(sized Sized) *measure {
	if sized == nil {
		return nil
	}
	return &measure{sized: sized}
}

// tell gives the sizes, or why they are unknown, if nothing was told yet.
func (m *measure) tell(u agent.Usage, err error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sized != nil {
		m.sized(u, err)
		m.sized = nil
	}
}

// end stops any telling: the read is over.
func (m *measure) end() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.sized = nil
	m.mu.Unlock()
}

// read takes the reading helper's agent's output (agent --lease --du):
// its sizes on stdout, one line of JSON; a line on stderr is the
// measure's failure, and an end with neither says what the agent left.
func (m *measure) read(helper string, attach io.Reader) {
	out := &firstLine{}
	errs := &firstLine{}
	out.done = func(line string) {
		var u agent.Usage
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			m.tell(u, fmt.Errorf("the agent in helper %s printed %q, not its sizes (is --agent-binary a docker-dtr of this version?)", helper, line))
			return
		}
		m.tell(u, nil)
	}
	errs.done = func(line string) {
		m.tell(agent.Usage{}, fmt.Errorf("the agent in helper %s: %s", helper, strings.TrimPrefix(line, "agent: ")))
	}
	stdcopy.StdCopy(out, errs, attach)
	why := strings.TrimSpace(errs.buf.String())
	if why == "" {
		why = "it printed nothing"
	}
	m.tell(agent.Usage{}, fmt.Errorf("the agent in helper %s ended before it measured the volume: %s", helper, why))
}

// firstLine calls done with the first line written to it, and drops the
// rest; it keeps at most a few KiB of a line that does not end.
type firstLine struct {
	buf  bytes.Buffer
	done func(string)
	told bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	if f.told {
		return len(p), nil
	}
	if room := 4<<10 - f.buf.Len(); len(p) > room {
		f.buf.Write(p[:max(room, 0)])
	} else {
		f.buf.Write(p)
	}
	if line, _, ok := strings.Cut(f.buf.String(), "\n"); ok {
		f.told = true
		f.done(line)
	}
	return len(p), nil
}
