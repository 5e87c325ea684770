// Package progress reports long work on stderr: timestamped lines, or
// nothing when quiet. Results never go here; they go to stdout.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes progress lines.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
	now   func() time.Time
}

// New returns a printer on w; quiet makes it print nothing.
func New(w io.Writer, quiet bool) *Printer {
	return &Printer{w: w, quiet: quiet, now: time.Now}
}

// Step prints one line.
func (p *Printer) Step(format string, args ...any) {
	if p == nil || p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", p.now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Warn prints a warning, even when quiet: it needs the operator's attention.
func (p *Printer) Warn(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "warning: %s\n", fmt.Sprintf(format, args...))
}
