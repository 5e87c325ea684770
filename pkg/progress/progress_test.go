package progress

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/termscreen"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// render is what a terminal shows for out.
func render(t *testing.T, out string) *termscreen.Screen {
	t.Helper()
	s, err := termscreen.Render(out)
	assert.NilError(t, err)
	return s
}

// syncBuffer is written by the ticker and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var stamp = regexp.MustCompile(`^\d\d:\d\d:\d\d `)

func TestTTYPhasesOnOneLineEach(t *testing.T) {
	var buf syncBuffer
	p := NewMode(&buf, TTY)
	p.SetIntervals(2*time.Millisecond, 0)
	p.Step("connecting")
	p.Phase("dumping tables", 4000, 0)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				p.Add(1, 100)
				if i%100 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	p.Step("dumped dtr2.tags: 10 rows")
	p.Warn("something odd")
	wg.Wait()
	p.Done()
	p.PhaseOf("verifying b.tar", "", 0, 1000)
	p.Set(0, 500)
	time.Sleep(20 * time.Millisecond)
	p.Close() // a failure: not "done"

	s := render(t, buf.String())
	lines := s.Text()
	assert.Equal(t, len(lines), 5, "%q", lines)
	assert.Assert(t, stamp.MatchString(lines[0]) && strings.HasSuffix(lines[0], "connecting"), lines[0])
	assert.Assert(t, strings.HasSuffix(lines[1], "dumped dtr2.tags: 10 rows"), lines[1])
	assert.Equal(t, lines[2], "warning: something odd")
	assert.Assert(t, is.Regexp(`^dumping tables: done, 4000 rows, 390\.6 KiB in [0-9.]+s \([0-9.]+ [KM]iB/s\)$`, lines[3]))
	assert.Assert(t, is.Regexp(`^verifying b\.tar:  50% 500 B/1000 B, [0-9.]+ [KM]?i?B/s, ETA [0-9.]+s$`, lines[4]))
	// Between, the line updated with counts of the total, rate and ETA.
	var withETA bool
	for _, f := range s.Frames {
		if strings.HasPrefix(f, "dumping tables: ") && regexp.MustCompile(`\d+/4000 rows, .*/s, ETA `).MatchString(f) {
			withETA = true
		}
	}
	assert.Assert(t, withETA, "frames: %q", s.Frames)
}

func TestTTYLineFitsTheTerminal(t *testing.T) {
	var buf syncBuffer
	p := NewMode(&buf, TTY)
	p.width = 30
	p.Phase(strings.Repeat("x", 50), 10, 0)
	p.Close()
	for _, l := range render(t, buf.String()).Text() {
		assert.Assert(t, len([]rune(l)) <= 29, l)
	}
	// A wide terminal has room for a bar.
	buf = syncBuffer{}
	p = NewMode(&buf, TTY)
	p.width = 120
	p.Phase("loading tables", 10, 0)
	p.Add(5, 0)
	p.Close()
	assert.DeepEqual(t, render(t, buf.String()).Text(), []string{"loading tables: [==========          ]  50% 5/10 rows"})
}

func TestPlainLinesAreTimestamped(t *testing.T) {
	var buf syncBuffer
	p := NewMode(&buf, Plain)
	p.SetIntervals(0, 5*time.Millisecond)
	p.Step("connecting to %s", "db")
	p.Phase("loading tables", 100, 2048)
	p.Add(50, 1024)
	time.Sleep(30 * time.Millisecond)
	p.Add(50, 1024)
	p.Done()
	p.Phase("a short one", 1, 1)
	p.Add(1, 1)
	p.Done() // before the first periodic line: no line at all
	out := buf.String()
	assert.Assert(t, !strings.ContainsAny(out, "\r\x1b"), "%q", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines {
		assert.Assert(t, stamp.MatchString(l), "%q", l)
	}
	assert.Assert(t, strings.HasSuffix(lines[0], " connecting to db"))
	// The phase's totals when it has lasted the interval.
	assert.Assert(t, strings.HasSuffix(lines[1], " loading tables: 100 rows, 2.0 KiB"), lines[1])
	// Periodic lines while the phase runs, then the final one.
	assert.Assert(t, len(lines) >= 4, "%q", lines)
	assert.Assert(t, is.Regexp(`loading tables:  50% 50/100 rows, 1\.0 KiB/2\.0 KiB, .*/s, ETA `, lines[2]))
	assert.Assert(t, is.Regexp(`loading tables: done, 100 rows, 2\.0 KiB in `, lines[len(lines)-1]))
	assert.Assert(t, !strings.Contains(out, "a short one"))
}

func TestQuietPrintsOnlyWarnings(t *testing.T) {
	var buf syncBuffer
	p := New(&buf, true)
	p.Step("connecting")
	p.Phase("dumping tables", 10, 0)
	p.Add(10, 10)
	p.Done()
	p.Warn("careful")
	p.Close()
	assert.Equal(t, buf.String(), "warning: careful\n")
}

func TestNilPrinterIsQuiet(t *testing.T) {
	var p *Printer
	p.Step("x")
	p.Phase("x", 1, 1)
	p.Add(1, 1)
	p.Done()
	assert.Equal(t, p.Mode(), Quiet)
}

func BenchmarkAdd(b *testing.B) {
	p := NewMode(&syncBuffer{}, TTY)
	p.Phase("x", 0, 0)
	defer p.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Add(1, 300)
		}
	})
}

// A held printer's lines wait for release, come out through the printer
// after the lines it printed meanwhile, and go straight through after it;
// on a terminal they keep the phase line below them. Quiet holds only
// warnings.
func TestHeldLinesWaitForRelease(t *testing.T) {
	var buf syncBuffer
	p := NewMode(&buf, Plain)
	held, release := p.Held()
	held.Step("using replica %s", "r1")
	held.Warn("replica r1 is not healthy")
	p.Step("verified")
	assert.Equal(t, len(strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")), 1, "%q", buf.String())
	release()
	held.Step("after")
	release() // once
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	assert.Equal(t, len(lines), 4, "%q", lines)
	assert.Assert(t, strings.HasSuffix(lines[0], " verified"))
	assert.Assert(t, stamp.MatchString(lines[1]) && strings.HasSuffix(lines[1], " using replica r1"), lines[1])
	assert.Equal(t, lines[2], "warning: replica r1 is not healthy")
	assert.Assert(t, strings.HasSuffix(lines[3], " after"))

	var tty syncBuffer
	p = NewMode(&tty, TTY)
	p.SetIntervals(time.Hour, 0)
	held, release = p.Held()
	p.Phase("verifying", 0, 100)
	held.Step("using replica r1")
	release()
	p.Done()
	screen := render(t, tty.String()).Text()
	assert.Assert(t, len(screen) >= 2 && strings.HasSuffix(screen[0], " using replica r1"), "%q", screen)
	assert.Assert(t, strings.HasPrefix(screen[1], "verifying: done"), "%q", screen)

	var quiet syncBuffer
	p = New(&quiet, true)
	held, release = p.Held()
	held.Step("using replica r1")
	held.Warn("careful")
	release()
	assert.Equal(t, quiet.String(), "warning: careful\n")

	var dropped syncBuffer
	p = New(&dropped, false)
	held, _ = p.Held()
	held.Step("never said")
	assert.Equal(t, dropped.String(), "")
}

func TestTotalMeasuredAfterThePhaseBegan(t *testing.T) {
	var buf syncBuffer
	p := NewMode(&buf, TTY)
	p.width = 120
	r := p.PhaseOf("reading volume v", "", 0, 0)
	p.Set(0, 250)
	p.draw()
	r.SetTotal(0, 1000)
	p.Set(0, 500)
	p.Close()
	s := render(t, buf.String())
	assert.DeepEqual(t, s.Text(), []string{"reading volume v: [==========          ]  50% 500 B/1000 B"})
	// Before the total, the counts alone; at it, the bar at once.
	assert.Assert(t, is.Contains(s.Frames, "reading volume v: 250 B"), "%q", s.Frames)
	assert.Assert(t, is.Contains(s.Frames, "reading volume v: [=====               ]  25% 250 B/1000 B"), "%q", s.Frames)

	// A total that comes after its phase ended changes nothing, not even
	// the phase running then.
	buf = syncBuffer{}
	p = NewMode(&buf, TTY)
	p.width = 120
	late := p.PhaseOf("reading volume v", "", 0, 0)
	p.Done()
	p.PhaseOf("writing", "", 0, 0)
	late.SetTotal(0, 1000)
	p.Set(0, 10)
	p.Close()
	assert.DeepEqual(t, render(t, buf.String()).Text()[1:], []string{"writing: 10 B"})
	var none Running
	none.SetTotal(1, 1) // a nil printer's phase
}
