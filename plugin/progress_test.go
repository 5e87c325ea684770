package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/internal/termscreen"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker/cli/cli/command"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// runWithTTYStderr runs the command with a pseudo-terminal as standard
// error, and returns stdout and all that the terminal received.
func runWithTTYStderr(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	assert.NilError(t, err)
	defer ptmx.Close()
	assert.NilError(t, pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}))
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&screen, ptmx) // ends with EIO once the terminal is closed
	}()
	var out bytes.Buffer
	dcli, err := command.NewDockerCli(command.WithInputStream(io.NopCloser(strings.NewReader(""))), command.WithOutputStream(&out), command.WithErrorStream(tty))
	assert.NilError(t, err)
	assert.Assert(t, dcli.Err().IsTerminal())
	code := execute(dcli, &out, tty, args)
	tty.Close()
	<-read
	return out.String(), screen.String(), code
}

// renderTerminal is what a terminal shows for out.
func renderTerminal(t *testing.T, out string) *termscreen.Screen {
	t.Helper()
	s, err := termscreen.Render(out)
	assert.NilError(t, err)
	return s
}

// seedBulk adds a table of n documents, so that the phases last long enough
// to be drawn more than once.
func seedBulk(t *testing.T, s *r.Session, n int) {
	t.Helper()
	_, err := r.DB("dtr2").TableCreate("bulk").RunWrite(s)
	assert.NilError(t, err)
	pad := strings.Repeat("x", 400)
	for i := 0; i < n; i += 1000 {
		docs := make([]map[string]any, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			docs = append(docs, map[string]any{"id": fmt.Sprintf("doc-%06d", j), "pad": pad})
		}
		_, err := r.DB("dtr2").Table("bulk").Insert(docs).RunWrite(s)
		assert.NilError(t, err)
	}
}

// fastFrames draws phases every few milliseconds, so that a test's short
// run shows intermediate frames as a long one would.
func fastFrames(t *testing.T) {
	testContext = context.WithValue(context.Background(), frameIntervals{}, [2]time.Duration{2 * time.Millisecond, 20 * time.Millisecond})
	t.Cleanup(func() { testContext = context.Background() })
}

var timestamped = regexp.MustCompile(`^\d\d:\d\d:\d\d `)

// nearRows matches the real server's estimate of the 20,391 rows of
// dtrtest.Seed plus seedBulk's 20,000: a number from 18,000 to 22,999.
const nearRows = `(1[89]|2[012])\d\d\d`

func TestProgressOnATerminal(t *testing.T) {
	fastFrames(t)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	seedBulk(t, fx.driver, 20000)
	backup := filepath.Join(fx.dir, "b.tar")

	out, screen, code := runWithTTYStderr(t, append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, screen)
	assert.Assert(t, is.Contains(out, "13 tables, 20391 rows"), "the summary on stdout")
	s := renderTerminal(t, screen)
	assert.Assert(t, is.Contains(strings.Join(s.Text(), "\n"), "dumped dtr2.bulk: 20000 rows"), "steps stay, above the phase line")
	last := s.Text()[len(s.Text())-1]
	assert.Assert(t, is.Regexp(`^dumping tables: done, 20391 rows, [0-9.]+ MiB in [0-9.]+s \([0-9.]+ [KM]iB/s\)$`, last))
	// The dump's total is RethinkDB's estimate (table.info()), near the
	// count but rarely equal to it on the real server.
	assertFrames(t, s, "dumping tables: ", `\d+/`+nearRows+` rows`)

	out, screen, code = runWithTTYStderr(t, "backup", "verify", "--progress", "tty", backup)
	assert.Equal(t, code, 0, screen)
	assert.Assert(t, is.Contains(out, ": verified"))
	s = renderTerminal(t, screen)
	assert.Equal(t, len(s.Text()), 1, "one line for the phase: %q", s.Text())
	assert.Assert(t, is.Regexp(`^verifying `+regexp.QuoteMeta(backup)+`: done, `+regexp.QuoteMeta(human.Bytes(fileSizeOf(t, backup)))+` in [0-9.]+s`, s.Text()[0]))
	assertFrames(t, s, "verifying "+backup+": ", `[0-9.]+ [KM]iB/[0-9.]+ MiB`)

	dtrtest.DropAll(t, fx.driver)
	out, screen, code = runWithTTYStderr(t, append([]string{"backup", "restore", "--force", "--dtr-version", "2.9.4", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, screen)
	assert.Assert(t, is.Contains(out, "row counts and primary keys checked"))
	s = renderTerminal(t, screen)
	var loaded bool
	for _, l := range s.Text() {
		loaded = loaded || regexp.MustCompile(`^loading tables: done, 20391 rows, [0-9.]+ MiB in `).MatchString(l)
		assert.Assert(t, !strings.HasPrefix(l, "loading tables: ") || strings.Contains(l, "done"), "one line for the phase: %q", s.Text())
	}
	assert.Assert(t, loaded, "%q", s.Text())
	assertFrames(t, s, "loading tables: ", `\d+/20391 rows, [0-9.]+ [KM]iB/[0-9.]+ MiB`)
}

// assertFrames checks that the phase's line was updated with counts of its
// total, a rate and an ETA before it was done.
func assertFrames(t *testing.T, s *termscreen.Screen, prefix, counts string) {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\[[= ]+\] )?\s*\d+% ` + counts + `, .*/s, ETA [0-9hms.]+$`)
	for _, f := range s.Frames {
		if re.MatchString(f) {
			return
		}
	}
	t.Fatalf("no frame of %q with counts, rate and ETA in %q", prefix, s.Frames)
}

func TestProgressPlainQuietAndJSON(t *testing.T) {
	fastFrames(t)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	seedBulk(t, fx.driver, 20000)
	backup := filepath.Join(fx.dir, "b.tar")
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-o", backup}, fx.flags()...)

	// Not a terminal: timestamped lines, no escape sequences.
	_, errOut, code := run(t, nil, create...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, !strings.ContainsAny(errOut, "\r\x1b"), "%q", errOut)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	for _, l := range lines {
		assert.Assert(t, timestamped.MatchString(l), "%q", l)
	}
	// A phase longer than the interval: its totals, counts every interval, its end.
	assert.Assert(t, is.Regexp(`dumping tables: `+nearRows+` rows\n`, errOut))
	assert.Assert(t, is.Regexp(`dumping tables:\s+\d+% \d+/`+nearRows+` rows, .*/s, ETA `, errOut))
	assert.Assert(t, is.Regexp(`dumping tables: done, 20391 rows, [0-9.]+ MiB in `, lines[len(lines)-1]))

	// Quiet, either way: nothing on stderr.
	for _, q := range [][]string{{"-q"}, {"--progress", "quiet"}, {"--progress=QUIET"}} {
		_, errOut, code = run(t, nil, append(create, q...)...)
		assert.Equal(t, code, 0, errOut)
		assert.Equal(t, errOut, "", q)
		_, errOut, code = run(t, nil, append([]string{"backup", "verify", backup}, q...)...)
		assert.Equal(t, code, 0, errOut)
		assert.Equal(t, errOut, "", q)
	}

	// The summary as JSON, on stdout; with -o - it goes to stderr.
	out, errOut, code := run(t, nil, append(create, "--format", "json", "-q")...)
	assert.Equal(t, code, 0, errOut)
	var sum struct {
		File       string `json:"file"`
		Rows       int64  `json:"rows"`
		Bytes      int64  `json:"bytes"`
		DTRVersion string `json:"dtrVersion"`
		Tables     []any  `json:"tables"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, sum.File, backup)
	assert.Equal(t, sum.Rows, int64(20391))
	assert.Equal(t, sum.DTRVersion, "2.9.4")
	assert.Equal(t, len(sum.Tables), 13)
	assert.Assert(t, sum.Bytes > 0)

	out, errOut, code = run(t, nil, append(append([]string{}, create[:len(create)-len(fx.flags())-1]...), append([]string{"-", "--format", "json", "-q"}, fx.flags()...)...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, strings.HasPrefix(out, "dtr-backup-v2.9.4/"), "the archive on stdout, %.40q", out)
	sum.Rows = 0
	assert.NilError(t, json.Unmarshal([]byte(errOut), &sum), errOut)
	assert.Equal(t, sum.File, "-")
	assert.Equal(t, sum.Rows, int64(20391))

	out, errOut, code = run(t, nil, "backup", "verify", "--format", "json", backup)
	assert.Equal(t, code, 0, errOut)
	var ver struct {
		File string `json:"file"`
		Rows int64  `json:"rows"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &ver), out)
	assert.Equal(t, ver.Rows, int64(20391))

	// Restore: quiet keeps warnings; JSON on stdout.
	dtrtest.DropAll(t, fx.driver)
	out, errOut, code = run(t, nil, append([]string{"backup", "restore", "--force", "-q", "--format", "json", "--dtr-version", "2.9.4", backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, errOut != "")
	for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
		assert.Assert(t, strings.HasPrefix(l, "warning: "), "quiet prints only warnings: %q", l)
	}
	var results []struct {
		Table string `json:"table"`
		Rows  int64  `json:"rows"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &results), out)
	assert.Equal(t, len(results), 13)
}

func TestProgressFlagUsage(t *testing.T) {
	for _, args := range [][]string{
		{"backup", "verify", "--progress", "fancy", "x.tar"},
		{"backup", "create", "--progress=bar", "-o", "x.tar"},
		{"backup", "restore", "--progress", "", "x.tar"},
	} {
		_, errOut, code := run(t, nil, args...)
		assert.Equal(t, code, 2, errOut)
		first := strings.SplitN(errOut, "\n", 2)[0]
		assert.Assert(t, is.Contains(first, `"--progress" flag: expected auto, tty, plain, quiet`), errOut)
	}
}

func fileSizeOf(t *testing.T, name string) int64 {
	st, err := os.Stat(name)
	assert.NilError(t, err)
	return st.Size()
}
