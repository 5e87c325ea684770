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

// read takes the reading helper's agent's output (agent --lease, with
// --du when m is not nil): first agent.LeaseHeld on stdout, told to held
// (nil) as soon as it comes, or why it did not come; then its sizes, one
// line of JSON; a line on stderr is the measure's failure, and an end
// with neither says what the agent left. held is told exactly once.
func (m *measure) read(helper string, attach io.Reader, held chan<- error) {
	said := false
	tellHeld := func(err error) {
		if !said {
			said = true
			held <- err
		}
	}
	out := &lines{}
	errs := &lines{}
	out.line = func(line string) bool {
		if !said {
			if line != agent.LeaseHeld {
				err := fmt.Errorf("the agent in helper %s printed %q, not that it holds the lease (is --agent-binary a docker-dtr of this version?)", helper, line)
				tellHeld(err)
				m.tell(agent.Usage{}, err)
				return false
			}
			tellHeld(nil)
			return m != nil
		}
		var u agent.Usage
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			m.tell(u, fmt.Errorf("the agent in helper %s printed %q, not its sizes (is --agent-binary a docker-dtr of this version?)", helper, line))
			return false
		}
		m.tell(u, nil)
		return false
	}
	errs.line = func(line string) bool {
		m.tell(agent.Usage{}, fmt.Errorf("the agent in helper %s: %s", helper, strings.TrimPrefix(line, "agent: ")))
		return false
	}
	stdcopy.StdCopy(out, errs, attach)
	why := strings.TrimSpace(errs.buf.String())
	if why == "" {
		why = "it printed nothing"
	}
	tellHeld(fmt.Errorf("the agent in helper %s ended before it held the lease: %s", helper, why))
	m.tell(agent.Usage{}, fmt.Errorf("the agent in helper %s ended before it measured the volume: %s", helper, why))
}

// lines calls line with each line written to it until line returns
// false, and drops the rest; it keeps at most a few KiB of a line that
// does not end.
type lines struct {
	buf  bytes.Buffer
	line func(string) bool
	done bool
}

func (l *lines) Write(p []byte) (int, error) {
	n := len(p)
	for !l.done && len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := 4<<10 - l.buf.Len(); len(part) > room {
			l.buf.Write(part[:max(room, 0)])
		} else {
			l.buf.Write(part)
		}
		if i < 0 {
			break
		}
		p = p[i+1:]
		line := l.buf.String()
		l.buf.Reset()
		l.done = !l.line(line)
		if l.done {
			// What is kept is the line that ended it (errs' why).
			l.buf.WriteString(line)
		}
	}
	return n, nil
}
