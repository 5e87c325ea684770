// Package progress reports long work on stderr: an updating line per phase
// on a terminal, timestamped lines otherwise, or nothing when quiet (but
// warnings). Results never go here; they go to stdout.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/human"
)

// Mode is how progress is shown.
type Mode int

const (
	// Plain prints timestamped lines, and a line every few seconds during a
	// long phase: for logs and pipes.
	Plain Mode = iota
	// TTY keeps one updating line for the running phase (carriage return
	// and erase-line), with counts, totals, rate and ETA.
	TTY
	// Quiet prints nothing but warnings.
	Quiet
)

// Escape sequences the terminal mode writes: back to column 0, erase the line.
const (
	cr        = "\r"
	eraseLine = "\x1b[K"
)

// Defaults for how often the running phase is shown.
const (
	DefaultTTYInterval   = 100 * time.Millisecond
	DefaultPlainInterval = 5 * time.Second
)

// Printer writes progress. Step, Warn, Phase, Add and Done may be called
// from any goroutine.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	mode  Mode
	now   func() time.Time
	width int

	ttyEvery, plainEvery time.Duration

	// rows and bytes are the running phase's counts: Add is called per
	// document, so they are atomics and drawing happens on a ticker.
	rows, bytes atomic.Int64

	ph      *phase        // the running phase, under mu
	onLine  bool          // TTY: the phase line is on screen, cursor at its end
	stopped chan struct{} // closed to stop the ticker of the running phase
	ticker  sync.WaitGroup
}

type phase struct {
	name, unit            string
	totalRows, totalBytes int64
	start                 time.Time
	// printed says a plain line showed the phase: its end is shown too.
	printed bool
}

// New returns a printer on w: plain lines, or nothing (but warnings) when
// quiet.
func New(w io.Writer, quiet bool) *Printer {
	if quiet {
		return NewMode(w, Quiet)
	}
	return NewMode(w, Plain)
}

// NewMode returns a printer on w in the given mode. When w reports its
// terminal's size (GetTtySize, as docker's streams do), TTY lines are cut
// to fit, so that carriage return and erase-line keep working.
func NewMode(w io.Writer, mode Mode) *Printer {
	p := &Printer{w: w, mode: mode, now: time.Now, width: 80, ttyEvery: DefaultTTYInterval, plainEvery: DefaultPlainInterval}
	if s, ok := w.(interface{ GetTtySize() (uint, uint) }); ok {
		if _, cols := s.GetTtySize(); cols > 0 {
			p.width = int(cols)
		}
	}
	return p
}

// SetIntervals changes how often the running phase is drawn on a terminal
// and printed in plain mode (tests; zero keeps a value).
func (p *Printer) SetIntervals(tty, plain time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tty > 0 {
		p.ttyEvery = tty
	}
	if plain > 0 {
		p.plainEvery = plain
	}
}

// Mode says how the printer shows progress.
func (p *Printer) Mode() Mode {
	if p == nil {
		return Quiet
	}
	return p.mode
}

// Step prints one timestamped line (above the phase line on a terminal).
func (p *Printer) Step(format string, args ...any) {
	if p == nil || p.mode == Quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line(fmt.Sprintf("%s %s", p.now().Format("15:04:05"), fmt.Sprintf(format, args...)))
}

// Warn prints a warning, even when quiet: it needs the operator's attention.
func (p *Printer) Warn(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line("warning: " + fmt.Sprintf(format, args...))
}

// line prints a whole line, keeping the phase line below it. Under mu.
func (p *Printer) line(s string) {
	if p.onLine {
		io.WriteString(p.w, cr+eraseLine+s+"\n")
		p.onLine = false
		p.draw()
		return
	}
	io.WriteString(p.w, s+"\n")
}

// Phase begins a phase of long work counted in rows (documents) and bytes;
// totals of 0 are unknown. It ends the running phase, if any, as done.
func (p *Printer) Phase(name string, totalRows, totalBytes int64) {
	p.PhaseOf(name, "rows", totalRows, totalBytes)
}

// PhaseOf is Phase with another word for the rows ("files"). The phase
// it returns takes totals measured after it began.
func (p *Printer) PhaseOf(name, unit string, totalRows, totalBytes int64) Running {
	if p == nil {
		return Running{}
	}
	p.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows.Store(0)
	p.bytes.Store(0)
	p.ph = &phase{name: name, unit: unit, totalRows: totalRows, totalBytes: totalBytes, start: p.now()}
	r := Running{p: p, ph: p.ph}
	switch p.mode {
	case Quiet:
		return r
	case TTY:
		p.draw()
	}
	every := p.ttyEvery
	if p.mode == Plain {
		every = p.plainEvery
	}
	p.stopped = make(chan struct{})
	p.ticker.Add(1)
	go p.tick(p.stopped, every)
	return r
}

// Running is a phase PhaseOf began.
type Running struct {
	p  *Printer
	ph *phase
}

// SetTotal gives the phase its totals once they are known, so that work
// need not wait for a measurement before it starts; 0 keeps a total
// unknown. A phase that has ended ignores it.
func (r Running) SetTotal(totalRows, totalBytes int64) {
	if r.p == nil {
		return
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if r.p.ph != r.ph {
		return
	}
	r.ph.totalRows, r.ph.totalBytes = totalRows, totalBytes
	r.p.draw()
}

func (p *Printer) expected() string {
	var parts []string
	if p.ph.totalRows > 0 {
		parts = append(parts, fmt.Sprintf("%d %s", p.ph.totalRows, p.ph.unit))
	}
	if p.ph.totalBytes > 0 {
		parts = append(parts, human.Bytes(p.ph.totalBytes))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

func (p *Printer) tick(stopped chan struct{}, every time.Duration) {
	defer p.ticker.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-t.C:
			p.mu.Lock()
			if p.ph != nil {
				if p.mode == TTY {
					p.draw()
				} else {
					// A phase shorter than the interval adds no line: logs
					// keep the lines they had.
					if !p.ph.printed {
						io.WriteString(p.w, p.now().Format("15:04:05")+" "+p.ph.name+p.expected()+"\n")
						p.ph.printed = true
					}
					io.WriteString(p.w, p.now().Format("15:04:05")+" "+p.status(false)+"\n")
				}
			}
			p.mu.Unlock()
		}
	}
}

// Add counts rows and bytes done in the running phase. It is called per
// document: two atomic adds, no drawing.
func (p *Printer) Add(rows, bytes int64) {
	if p == nil {
		return
	}
	p.rows.Add(rows)
	p.bytes.Add(bytes)
}

// Set sets the running phase's counts, for work measured by position
// rather than by increments.
func (p *Printer) Set(rows, bytes int64) {
	if p == nil {
		return
	}
	p.rows.Store(rows)
	p.bytes.Store(bytes)
}

// Done ends the running phase, printing its final counts, time and rate.
func (p *Printer) Done() { p.end(true) }

// Close ends the running phase, if any, without calling it done (a failed
// or interrupted run): the last counts stay on screen. Defer it.
func (p *Printer) Close() { p.end(false) }

func (p *Printer) end(ok bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	stopped := p.stopped
	p.stopped = nil
	p.mu.Unlock()
	if stopped != nil {
		close(stopped)
		p.ticker.Wait()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ph == nil {
		return
	}
	switch {
	case p.mode == Quiet:
	case ok && (p.mode == TTY || p.ph.printed):
		s := p.final()
		if p.mode == TTY {
			io.WriteString(p.w, cr+eraseLine+p.fit(s)+"\n")
		} else {
			io.WriteString(p.w, p.now().Format("15:04:05")+" "+s+"\n")
		}
	case p.onLine:
		p.draw() // the last counts, as they were when it stopped
		io.WriteString(p.w, "\n")
	}
	p.onLine = false
	p.ph = nil
}

// draw redraws the phase line on a terminal. Under mu.
func (p *Printer) draw() {
	if p.mode != TTY || p.ph == nil {
		return
	}
	io.WriteString(p.w, cr+eraseLine+p.fit(p.status(true)))
	p.onLine = true
}

// fit cuts s to the terminal's width less one column: a line that wraps
// cannot be erased with carriage return.
func (p *Printer) fit(s string) string {
	r := []rune(s)
	if max := p.width - 1; max > 0 && len(r) > max {
		return string(r[:max])
	}
	return s
}

// status is the running phase's line: counts of totals, rate, ETA.
func (p *Printer) status(bar bool) string {
	ph := p.ph
	rows, bytes := p.rows.Load(), p.bytes.Load()
	elapsed := p.now().Sub(ph.start)
	var b strings.Builder
	frac := -1.0
	switch {
	case ph.totalBytes > 0:
		frac = float64(bytes) / float64(ph.totalBytes)
	case ph.totalRows > 0:
		frac = float64(rows) / float64(ph.totalRows)
	}
	if frac > 1 {
		frac = 1 // an estimate was low
	}
	if frac >= 0 {
		fmt.Fprintf(&b, "%3d%% ", int(frac*100))
	}
	var counts []string
	if ph.unit != "" {
		counts = append(counts, count(rows, ph.totalRows, ph.unit, func(n int64) string { return fmt.Sprint(n) }))
	}
	if bytes > 0 || ph.totalBytes > 0 || ph.unit == "" {
		counts = append(counts, count(bytes, ph.totalBytes, "", human.Bytes))
	}
	b.WriteString(strings.Join(counts, ", "))
	// On a terminal, a rate once a frame's time has passed: earlier it is
	// noise.
	if secs := elapsed.Seconds(); secs > 0 && (!bar || elapsed >= p.ttyEvery) && (rows > 0 || bytes > 0) {
		if bytes > 0 {
			fmt.Fprintf(&b, ", %s/s", human.Bytes(int64(float64(bytes)/secs)))
		} else {
			fmt.Fprintf(&b, ", %.0f %s/s", float64(rows)/secs, ph.unit)
		}
		if frac > 0 && frac < 1 {
			eta := time.Duration(float64(elapsed) * (1 - frac) / frac)
			b.WriteString(", ETA " + clock(eta))
		}
	}
	// The bar only where the line (at most ~70 columns of counts) fits
	// beside it, decided by width alone so that it does not come and go.
	const n = 20
	if head := ph.name + ": "; bar && frac >= 0 && len([]rune(head))+n+3+70 < p.width {
		full := int(frac * n)
		return head + "[" + strings.Repeat("=", full) + strings.Repeat(" ", n-full) + "] " + b.String()
	}
	return ph.name + ": " + b.String()
}

// final is the done phase's line.
func (p *Printer) final() string {
	ph := p.ph
	rows, bytes := p.rows.Load(), p.bytes.Load()
	elapsed := p.now().Sub(ph.start)
	s := ph.name + ": done"
	if ph.unit != "" {
		s += fmt.Sprintf(", %d %s", rows, ph.unit)
	}
	if bytes > 0 || ph.unit == "" {
		s += ", " + human.Bytes(bytes)
	}
	s += " in " + clock(elapsed)
	if secs := elapsed.Seconds(); secs > 0 && bytes > 0 {
		s += fmt.Sprintf(" (%s/s)", human.Bytes(int64(float64(bytes)/secs)))
	}
	return s
}

func count(n, total int64, unit string, f func(int64) string) string {
	s := f(n)
	if total > 0 {
		s += "/" + f(total)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

// clock shows a duration as 1h02m03s, 2m03s or 3.4s.
func clock(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d >= 10*time.Second:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// Reader counts the bytes read through it into the printer's running phase.
func (p *Printer) Reader(r io.Reader) io.Reader { return &countingReader{r: r, p: p} }

type countingReader struct {
	r io.Reader
	p *Printer
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(0, int64(n))
	return n, err
}

// Held returns a printer for work that runs beside p's phase and must
// say its piece after it: its steps and warnings wait until release
// prints them through p, as they came (with their own times), and go
// straight through p after that. Lines never released are dropped.
func (p *Printer) Held() (held *Printer, release func()) {
	if p == nil {
		return nil, func() {}
	}
	h := &heldLines{to: p}
	mode := Plain
	if p.mode == Quiet {
		mode = Quiet
	}
	held = NewMode(h, mode)
	held.now = p.now
	return held, h.release
}

// heldLines keeps a held printer's lines (each a Write of its own, in
// plain mode) until release.
type heldLines struct {
	mu       sync.Mutex
	to       *Printer
	lines    []string
	released bool
}

func (h *heldLines) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := strings.TrimSuffix(string(b), "\n")
	if h.released {
		h.to.mu.Lock()
		h.to.line(s)
		h.to.mu.Unlock()
	} else {
		h.lines = append(h.lines, s)
	}
	return len(b), nil
}

func (h *heldLines) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	h.to.mu.Lock()
	defer h.to.mu.Unlock()
	for _, s := range h.lines {
		h.to.line(s)
	}
	h.lines = nil
}
