package tunnel

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// The link between the plugin and an agent lives while bytes cross it. The
// plugin sends something at least every KeepAlive, even while a command
// waits (on an index build, say) and no stream carries data: the
// multiplexer's pings for the tunnel, a byte for an agent that only holds a
// lease. An agent that hears nothing for IdleTimeout takes its plugin for
// gone (killed, or its connection dropped without a close) and exits, so
// that its container, which removes itself, never outlives the plugin by
// more than that. The bound leaves room for four keepalives to go missing
// behind a busy engine.
const (
	KeepAlive   = 10 * time.Second
	IdleTimeout = 45 * time.Second
)

// Watch returns a reader that notes when bytes last came out of r, and a
// channel that is closed once r ends (end of input or an error) or brings
// nothing for idle. gone then says which.
func Watch(r io.Reader, idle time.Duration) (io.Reader, *Watcher) {
	w := &Watcher{r: r, done: make(chan struct{})}
	w.last.Store(time.Now().UnixNano())
	go w.watch(idle)
	return w, w
}

// Watcher is the reader Watch returns.
type Watcher struct {
	r    io.Reader
	last atomic.Int64
	once sync.Once
	done chan struct{}
	why  atomic.Value // string
	busy atomic.Bool
}

// Busy says the reader of r is held up by its consumer, not by the
// plugin: what the plugin sent waits to be used, so silence is not its
// absence. Idle time counts again from Busy(false).
func (w *Watcher) Busy(b bool) {
	if !b {
		w.last.Store(time.Now().UnixNano())
	}
	w.busy.Store(b)
}

func (w *Watcher) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.last.Store(time.Now().UnixNano())
	}
	if err != nil {
		w.end("the plugin's connection ended")
	}
	return n, err
}

func (w *Watcher) end(why string) {
	w.once.Do(func() {
		w.why.Store(why)
		close(w.done)
	})
}

func (w *Watcher) watch(idle time.Duration) {
	tick := time.NewTicker(max(min(idle/8, time.Second), time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
			if w.busy.Load() {
				continue
			}
			if since := time.Since(time.Unix(0, w.last.Load())); since >= idle {
				w.end("no word from the plugin for " + since.Round(time.Second).String())
				return
			}
		}
	}
}

// Done is closed once the link is gone.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Why says how the link went, once Done is closed.
func (w *Watcher) Why() string {
	s, _ := w.why.Load().(string)
	return s
}

// Hold is a lease on the far side: it reads r until it ends or stays
// silent for idle, and returns why the link is gone.
func Hold(r io.Reader, idle time.Duration) string {
	wr, w := Watch(r, idle)
	go io.Copy(io.Discard, wr)
	<-w.Done()
	return w.Why()
}

// KeepAliveWriter writes a byte to w every interval until stop is closed
// or a write fails: what a lease's plugin side sends.
func KeepAliveWriter(w io.Writer, interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return
			}
		}
	}
}
