package e2e

import (
	"io"
	"sync"
	"time"
)

// slowLink is one direction of a throttled engine proxy: at most rate
// bytes a second, shared by every connection as one link is, and each
// chunk delivered delay after the link has carried it (the way's
// latency).
type slowLink struct {
	rate  float64 // bytes per second
	delay time.Duration

	mu   sync.Mutex
	free time.Time // when the link has carried everything given so far
}

// due is when a chunk of n bytes handed to the link now arrives.
func (l *slowLink) due(n int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.free.Before(now) {
		l.free = now
	}
	l.free = l.free.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.free.Add(l.delay)
}

// pacedWriter writes each chunk to w at its due time on the link, in
// order. Write returns once the chunk is queued; a full queue (the link's
// buffer) holds the writer back, as a full TCP window does.
type pacedWriter struct {
	w    io.Writer
	link *slowLink
	q    chan pacedChunk
	done chan struct{}

	mu  sync.Mutex
	err error
}

type pacedChunk struct {
	b   []byte
	due time.Time
}

// pacedQueue is how many chunks (of up to 32 KiB) a link buffers.
const pacedQueue = 64

func newPacedWriter(w io.Writer, link *slowLink) *pacedWriter {
	pw := &pacedWriter{w: w, link: link, q: make(chan pacedChunk, pacedQueue), done: make(chan struct{})}
	go func() {
		defer close(pw.done)
		for c := range pw.q {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if pw.failed() != nil {
				continue // drain
			}
			if _, err := pw.w.Write(c.b); err != nil {
				pw.mu.Lock()
				pw.err = err
				pw.mu.Unlock()
			}
		}
	}()
	return pw
}

func (pw *pacedWriter) failed() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.err
}

func (pw *pacedWriter) Write(b []byte) (int, error) {
	if err := pw.failed(); err != nil {
		return 0, err
	}
	pw.q <- pacedChunk{b: append([]byte(nil), b...), due: pw.link.due(len(b))}
	return len(b), nil
}

// flush delivers what is queued, then stops.
func (pw *pacedWriter) flush() {
	close(pw.q)
	<-pw.done
}
