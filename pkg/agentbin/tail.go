package agentbin

import (
	"bytes"
	"sync"
)

// Tail keeps the last bytes an agent wrote (its stderr), to explain a
// failure without holding everything it ever said.
type Tail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// tailMax is what a Tail keeps: the last lines of an error are enough.
const tailMax = 4096

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - tailMax; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
