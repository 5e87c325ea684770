package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestRunbook runs docs/disaster-recovery.md against the fixture: every
// console block's commands, the nightly job as cron and systemd would run
// it, and the recovery after a lost majority, checking that the data came
// back. The page's "How this page is tested" section describes the markers.

const runbookPath = "../docs/disaster-recovery.md"

// A code block of the runbook.
type rbBlock struct {
	line  int // of the opening fence, 1-based
	lang  string
	attrs map[string]string
	body  string
	cmds  []rbCmd // console blocks: the "$ " commands
}

type rbCmd struct {
	line   int
	text   string   // with its backslash-newline continuations
	output []string // the lines the page shows it print
}

var (
	rbMarker = regexp.MustCompile(`^<!--\s*runbook:(.*?)-->\s*$`)
	rbAttr   = regexp.MustCompile(`([\w-]+)(?:=("[^"]*"|\S+))?`)
	// A docker dtr command, also with global options (docker --context X dtr),
	// but not the docker/dtr image.
	rbDockerDTR = regexp.MustCompile(`(?:^|[\s;|&(])docker(?:\s+--?[\w-]+(?:=\S+|\s+[^-\s]\S*)?)*\s+dtr\b`)
	rbKnownAttr = map[string]bool{"id": true, "skip": true, "exit": true, "file": true, "append": true, "if": true, "placeholders": true}
)

// parseRunbook reads the page's code blocks, the markers before them and
// the placeholders of its Conventions table.
func parseRunbook(name, text string) (blocks []rbBlock, placeholders []string, errs []error) {
	lines := strings.Split(text, "\n")
	var marker map[string]string
	markerLine, inTable := -1, false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := rbMarker.FindStringSubmatch(line); m != nil {
			marker, markerLine = map[string]string{}, i
			for _, a := range rbAttr.FindAllStringSubmatch(m[1], -1) {
				if !rbKnownAttr[a[1]] {
					errs = append(errs, fmt.Errorf("%s:%d: unknown runbook attribute %q", name, i+1, a[1]))
				}
				marker[a[1]] = strings.Trim(a[2], `"`)
			}
			if _, ok := marker["placeholders"]; ok {
				inTable, marker = true, nil
			}
			continue
		}
		if inTable {
			if strings.HasPrefix(line, "|") {
				cell := strings.TrimSpace(strings.Split(line, "|")[1])
				if strings.HasPrefix(cell, "`") {
					placeholders = append(placeholders, strings.Trim(cell, "`"))
				}
				continue
			}
			if len(placeholders) > 0 {
				inTable = false
			}
		}
		if !strings.HasPrefix(line, "```") {
			continue
		}
		b := rbBlock{line: i + 1, lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), attrs: map[string]string{}}
		// A marker counts only on the last non-blank line before the fence.
		prev := i - 1
		for prev >= 0 && strings.TrimSpace(lines[prev]) == "" {
			prev--
		}
		if marker != nil && markerLine == prev {
			b.attrs = marker
		}
		marker = nil
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i >= len(lines) {
			errs = append(errs, fmt.Errorf("%s:%d: code block not closed", name, b.line))
		}
		b.body = strings.Join(body, "\n") + "\n"
		if b.lang == "console" {
			for j := 0; j < len(body); j++ {
				if !strings.HasPrefix(body[j], "$ ") {
					if n := len(b.cmds); n > 0 && strings.TrimSpace(body[j]) != "" {
						b.cmds[n-1].output = append(b.cmds[n-1].output, body[j])
					}
					continue
				}
				cmd := rbCmd{line: b.line + 1 + j, text: strings.TrimPrefix(body[j], "$ ")}
				for strings.HasSuffix(body[j], `\`) && j+1 < len(body) {
					j++
					cmd.text += "\n" + body[j]
				}
				b.cmds = append(b.cmds, cmd)
			}
		}
		blocks = append(blocks, b)
	}
	return blocks, placeholders, errs
}

// checkBlocks applies the rules that need nothing run: a block that is not
// run holds no docker dtr command, a console block that is run has
// commands, and exit= is a number.
func checkBlocks(name string, blocks []rbBlock) (errs []error) {
	for _, b := range blocks {
		where := fmt.Sprintf("%s:%d", name, b.line)
		_, skip := b.attrs["skip"]
		switch {
		case skip:
			if rbDockerDTR.MatchString(b.body) {
				errs = append(errs, fmt.Errorf("%s: a block marked skip holds a docker dtr command", where))
			}
		case b.attrs["file"] != "":
		case b.lang == "console":
			if len(b.cmds) == 0 {
				errs = append(errs, fmt.Errorf("%s: a console block without a \"$ \" command", where))
			}
			if e := b.attrs["exit"]; e != "" {
				if _, err := strconv.Atoi(e); err != nil {
					errs = append(errs, fmt.Errorf("%s: exit=%s is not a number", where, e))
				}
			}
		default:
			if rbDockerDTR.MatchString(b.body) {
				errs = append(errs, fmt.Errorf("%s: a %q block, neither run nor a file, holds a docker dtr command", where, b.lang))
			}
		}
	}
	return errs
}

// checkSample checks what the page shows a command print: each piece
// between "…" of each line must be in what it printed.
func checkSample(sample []string, printed string) error {
	for _, line := range sample {
		for _, piece := range strings.Split(line, "…") {
			if piece = strings.TrimSpace(piece); piece != "" && !strings.Contains(printed, piece) {
				return fmt.Errorf("the page shows %q, which it did not print", piece)
			}
		}
	}
	return nil
}

// runbook is the environment the page's commands run in.
type runbook struct {
	t     *testing.T
	dir   string // working directory
	env   []string
	repl  *strings.Replacer
	ran   []string // every command run, substituted
	took  time.Duration
	count int
}

func (rb *runbook) subst(s string) string { return rb.repl.Replace(s) }

// run runs one command through bash as the page shows it (substituted),
// and checks its exit status.
func (rb *runbook) run(where, shell, cmd string, env []string, want int) result {
	t := rb.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"-c", cmd}
	if shell == "bash" {
		args = append([]string{"-e", "-o", "pipefail"}, args...)
	}
	c := exec.CommandContext(ctx, shell, args...)
	c.Dir = rb.dir
	c.Env = append(append([]string{}, rb.env...), env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	began := time.Now()
	err := c.Run()
	took := time.Since(began)
	rb.took += took
	rb.count++
	rb.ran = append(rb.ran, cmd)
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		assert.NilError(t, err, "%s: %s", where, cmd)
	}
	t.Logf("%s (%s, exit %d): %s", where, took.Round(10*time.Millisecond), code, firstLine(cmd))
	assert.Equal(t, code, want, "%s: %s\nstdout:\n%s\nstderr:\n%s", where, cmd, out.String(), errb.String())
	return result{out.String(), errb.String(), code}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 140 {
		line = line[:140] + "…"
	}
	return line
}

// condition runs an if= command: it holds when the command exits 0 and, for
// a --help, prints the help of that command and not of its parent (cobra
// prints the parent's for an unknown subcommand, and exits 0).
func (rb *runbook) condition(cmd string) bool {
	c := exec.Command("bash", "-c", rb.subst(cmd))
	c.Dir, c.Env = rb.dir, rb.env
	out, err := c.Output()
	if err != nil {
		return false
	}
	if name, ok := strings.CutSuffix(strings.TrimSpace(cmd), " --help"); ok {
		return strings.Contains(string(out), name)
	}
	return true
}

// shims are stand-ins for the off-site tools: s3://BUCKET/KEY is a file
// under $RUNBOOK_S3, and ssh runs the remote command here.
var rbShims = map[string]string{
	"aws": `#!/bin/sh
set -eu
[ "$1 $2" = "s3 cp" ] || { echo "aws stand-in: only 's3 cp' is supported: $*" >&2; exit 2; }
src=$3 dst=$4
case $src in s3://*) src=$RUNBOOK_S3/${src#s3://} ;; esac
case $dst in s3://*) dst=$RUNBOOK_S3/${dst#s3://}; mkdir -p "$(dirname "$dst")" ;; esac
if [ "$src" = - ]; then cat > "$dst"; elif [ "$dst" = - ]; then cat "$src"; else cp "$src" "$dst"; fi
`,
	"ssh": `#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
shift
exec sh -c "$*"
`,
}

func TestRunbook(t *testing.T) {
	began := time.Now()
	cfg := dockerConfig(t)
	page, err := os.ReadFile(runbookPath)
	assert.NilError(t, err)
	name := filepath.Base(runbookPath)
	blocks, placeholders, errs := parseRunbook(name, string(page))
	errs = append(errs, checkBlocks(name, blocks)...)
	assert.Assert(t, len(errs) == 0, "%v", errs)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 3, Registry: true, Components: []string{"rethinkdb", "registry"}})
	src, lost1, lost2 := c.Replicas[0], c.Replicas[1], c.Replicas[2]
	other := c.Replicas[2] // stands for the other cluster's replica
	vol := "dtr-registry-" + src.ID
	pushed := dtrfixture.Push(t, c.Client, src.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	driver := c.Connect(t, src.ID)
	dtrfixture.SeedRegistryMetadata(t, driver, pushed)
	_, err = r.DB("dtr2").TableCreate("properties").RunWrite(driver)
	assert.NilError(t, err)
	_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "replicas": []string{src.ID, lost1.ID, lost2.ID},
		"created_at": time.Date(2026, 11, 24, 2, 15, 0, 0, time.UTC)}).RunWrite(driver)
	assert.NilError(t, err)
	c.Replicate(t) // every table on every replica, as DTR's are
	filesBefore := dtrfixture.VolumeFiles(t, c.Client, vol)
	tablesBefore := dtrtest.Snapshot(t, driver)
	setup := time.Since(began)

	// The page's paths, under one temporary directory.
	tmp := t.TempDir()
	dirs := map[string]string{}
	for _, d := range []string{"backups", "etc", "secure", "sbin", "cron.d", "systemd", "srv", "s3", "shims", "work"} {
		dirs[d] = filepath.Join(tmp, d)
		assert.NilError(t, os.MkdirAll(dirs[d], 0o700))
	}
	// gpg's agent socket lives in GNUPGHOME: keep the path short.
	gnupg, err := os.MkdirTemp("", "rbgpg")
	assert.NilError(t, err)
	assert.NilError(t, os.Chmod(gnupg, 0o700))
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = append(os.Environ(), "GNUPGHOME="+gnupg)
		kill.Run()
		os.RemoveAll(gnupg)
	})
	assert.NilError(t, os.WriteFile(filepath.Join(dirs["etc"], "passphrase"), []byte("correct horse battery staple\n"), 0o600))
	for name, body := range rbShims {
		assert.NilError(t, os.WriteFile(filepath.Join(dirs["shims"], name), []byte(body), 0o755))
	}

	values := map[string]string{
		"0123456789ab":             src.ID,
		"fedcba987654":             other.ID,
		"prod":                     "prod",
		"dr-site":                  "dr-site",
		"/backups/dtr":             dirs["backups"],
		"/etc/dtr-backup":          dirs["etc"],
		"/secure":                  dirs["secure"],
		"/usr/local/sbin":          dirs["sbin"],
		"/etc/cron.d":              dirs["cron.d"],
		"/etc/systemd/system":      dirs["systemd"],
		"s3://example-dtr-backups": "s3://example-dtr-backups",
		"backup-host.example.com":  "backup-host.example.com",
		"/srv/dtr-backups":         dirs["srv"],
	}
	var keys []string
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sorted := append([]string(nil), placeholders...)
	sort.Strings(sorted)
	assert.DeepEqual(t, sorted, keys) // the Conventions table is what the test substitutes
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var pairs []string
	for _, k := range keys {
		if values[k] != k {
			pairs = append(pairs, k, values[k])
		}
	}

	env := []string{"DOCKER_CONFIG=" + cfg, "GNUPGHOME=" + gnupg, "RUNBOOK_S3=" + dirs["s3"],
		"PATH=" + dirs["shims"] + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, e := range os.Environ() {
		switch name, _, _ := strings.Cut(e, "="); name {
		case "DOCKER_CONFIG", "DOCKER_CONTEXT", "GNUPGHOME", "PATH", "RUNBOOK_S3":
		default:
			env = append(env, e)
		}
	}
	rb := &runbook{t: t, dir: dirs["work"], env: env, repl: strings.NewReplacer(pairs...)}

	// The contexts the page names lead to the test engine.
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	for _, name := range []string{"prod", "dr-site"} {
		res := docker(t, cfg, nil, "context", "create", name, "--docker", "host="+host)
		assert.Equal(t, res.code, 0, res.stderr)
	}

	// What the test does around the blocks with an id.
	type hook struct {
		before func()
		after  func(results []result)
		seen   bool
	}
	var cronRuns, systemdRuns int
	hooks := map[string]*hook{
		"cron": {after: func([]result) {
			cronRuns = rb.runCron(filepath.Join(dirs["cron.d"], "dtr-backup"))
			nightly := filepath.Join(dirs["backups"], "nightly")
			for _, pattern := range []string{"images-*.tar.gpg", "metadata-*.tar.gpg"} {
				found, err := filepath.Glob(filepath.Join(nightly, pattern))
				assert.NilError(t, err)
				assert.Assert(t, len(found) >= 1, "the nightly job wrote no %s", pattern)
				for _, f := range found {
					st, err := os.Stat(f)
					assert.NilError(t, err)
					assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600), f)
				}
			}
		}},
		"systemd": {after: func([]result) {
			systemdRuns = rb.runSystemd(filepath.Join(dirs["systemd"], "dtr-backup.service"), filepath.Join(dirs["systemd"], "dtr-backup.timer"))
		}},
		// Two replicas' nodes go down, RethinkDB with them: the tables of
		// the one left stop taking writes.
		"lost-status": {
			before: func() {
				c.Stop(t, lost1.ID)
				c.Stop(t, lost2.ID)
				assert.Assert(t, c.WaitMajorityLost(t, src.ID) > 0)
			},
			after: func(res []result) {
				assert.Assert(t, is.Contains(res[0].stdout, "0 of 3 replicas healthy, a majority needs 2: MAJORITY LOST"))
				assert.Assert(t, is.Contains(res[0].stdout, "sees 1 of 3 replicas' servers connected"))
				assert.Assert(t, is.Contains(res[0].stderr, "cannot take writes"))
			},
		},
		// docker/dtr destroy, then DTR's restore: a fresh replica with the
		// backup's id, an empty image volume and a configuration table.
		"destroy": {before: func() {
			dtrfixture.WipeVolume(t, c.Client, vol)
			dtrtest.DropAll(t, driver)
		}},
		"dtr-restore": {before: func() {
			_, err := r.DBCreate("dtr2").RunWrite(driver)
			assert.NilError(t, err)
			_, err = r.DB("dtr2").TableCreate("properties").RunWrite(driver)
			assert.NilError(t, err)
			_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "replicas": []string{src.ID}}).RunWrite(driver)
			assert.NilError(t, err)
		}},
		"restore-images": {after: func([]result) {
			assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), filesBefore)
		}},
		"restore-metadata": {after: func([]result) {
			assert.DeepEqual(t, dtrtest.Snapshot(t, driver), tablesBefore)
		}},
		// The restored tables are on the one replica: DTR's join puts them
		// on the new ones too.
		"join": {before: func() {
			c.Start(t, lost1.ID)
			c.Start(t, lost2.ID)
			c.Replicate(t)
			c.WaitReady(t, src.ID)
		}},
		"after-restore": {after: func(res []result) {
			assert.Assert(t, is.Contains(res[0].stdout, "3 of 3 replicas healthy, a majority needs 2: OK"))
			c.WaitReady(t, src.ID)
			dtrfixture.PullAndCompare(t, c.Client, src.RegistryAddr, pushed)
		}},
	}

	// The page, top to bottom.
	var gatedOut []rbBlock
	writtenFiles := map[string]int{} // substituted path -> block line
	for _, b := range blocks {
		where := fmt.Sprintf("%s:%d", name, b.line)
		id := b.attrs["id"]
		h := hooks[id]
		if id != "" {
			assert.Assert(t, h != nil, "%s: no hook for id=%s", where, id)
			h.seen = true
		}
		if cond := b.attrs["if"]; cond != "" && !rb.condition(cond) {
			t.Logf("%s: not used: %q does not succeed with its own help", where, cond)
			gatedOut = append(gatedOut, b)
			continue
		}
		if h != nil && h.before != nil {
			h.before()
		}
		var results []result
		_, skip := b.attrs["skip"]
		switch {
		case skip: // checkBlocks: no docker dtr in it
		case b.attrs["file"] != "":
			path := rb.subst(b.attrs["file"])
			assert.Assert(t, strings.HasPrefix(path, tmp), "%s: file=%s is not under a placeholder path", where, b.attrs["file"])
			mode := os.FileMode(0o644)
			if strings.HasPrefix(b.body, "#!") {
				mode = 0o755
			}
			flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
			if _, ok := b.attrs["append"]; ok {
				_, err := os.Stat(path)
				assert.NilError(t, err, "%s: append to a file no earlier block wrote", where)
				flags = os.O_WRONLY | os.O_APPEND
			}
			f, err := os.OpenFile(path, flags, mode)
			assert.NilError(t, err)
			_, err = f.WriteString(rb.subst(b.body))
			assert.NilError(t, err)
			assert.NilError(t, f.Close())
			writtenFiles[path] = b.line
		case b.lang == "console":
			want, _ := strconv.Atoi(b.attrs["exit"]) // checked by checkBlocks; "" is 0
			for _, cmd := range b.cmds {
				at := fmt.Sprintf("%s:%d", name, cmd.line)
				res := rb.run(at, "bash", rb.subst(cmd.text), nil, want)
				var sample []string
				for _, line := range cmd.output {
					sample = append(sample, rb.subst(line))
				}
				assert.NilError(t, checkSample(sample, res.stdout+res.stderr), "%s: %s\nstdout:\n%s\nstderr:\n%s", at, cmd.text, res.stdout, res.stderr)
				results = append(results, res)
			}
		}
		if h != nil && h.after != nil {
			h.after(results)
		}
	}
	for id, h := range hooks {
		assert.Assert(t, h.seen, "the page has no block with id=%s", id)
	}
	assert.Equal(t, cronRuns, 2, "the cron file's two entries")
	assert.Equal(t, systemdRuns, 1, "the service's ExecStart")

	// Nothing skipped silently: every docker dtr command in a file the page
	// writes was run, through a command that named the file.
	for path, line := range writtenFiles {
		if !rbDockerDTR.MatchString(readOrEmpty(path)) {
			continue
		}
		ran := false
		for _, cmd := range rb.ran {
			ran = ran || strings.Contains(cmd, path)
		}
		assert.Assert(t, ran, "%s:%d: the file %s holds docker dtr commands, and nothing ran it", name, line, path)
	}
	for _, b := range gatedOut {
		t.Logf("NOT RUN (its if= failed): %s:%d: %s", name, b.line, strings.TrimSpace(b.body))
	}
	assertNoHelpers(t, c)
	t.Logf("runbook: %d commands in %s; fixture and images %s; total %s", rb.count, rb.took.Round(100*time.Millisecond),
		setup.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
}

func readOrEmpty(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

var rbCronTime = regexp.MustCompile(`^[0-9*,/-]+$`)

// runCron checks a cron.d file and runs each entry's command as cron would
// (sh -c, with the file's variables but the test's PATH and SHELL); it
// returns how many entries ran.
func (rb *runbook) runCron(path string) int {
	t := rb.t
	f, err := os.Open(path)
	assert.NilError(t, err)
	defer f.Close()
	var env []string
	entries := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, value, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(name) {
			if name != "PATH" && name != "SHELL" && name != "MAILTO" {
				env = append(env, name+"="+value)
			}
			continue
		}
		fields := strings.Fields(line)
		assert.Assert(t, len(fields) >= 7, "%s:%d: a cron.d entry is 5 time fields, a user and a command: %q", path, n, line)
		for _, tf := range fields[:5] {
			assert.Assert(t, rbCronTime.MatchString(tf), "%s:%d: time field %q", path, n, tf)
		}
		cmd := regexp.MustCompile(`^\s*(?:\S+\s+){6}`).ReplaceAllString(sc.Text(), "")
		rb.run(fmt.Sprintf("cron %s:%d", filepath.Base(path), n), "sh", cmd, env, 0)
		entries++
	}
	assert.NilError(t, sc.Err())
	return entries
}

// parseUnit reads a systemd unit as key=value lines in [Section]s.
func parseUnit(t *testing.T, path string) map[string][]string {
	data, err := os.ReadFile(path)
	assert.NilError(t, err)
	unit := map[string][]string{}
	section := ""
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			key, value, ok := strings.Cut(line, "=")
			assert.Assert(t, ok && section != "" && regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`).MatchString(key),
				"%s:%d: not a key=value line in a section: %q", path, n+1, line)
			unit[section+"."+key] = append(unit[section+"."+key], value)
		}
	}
	return unit
}

// runSystemd checks the service and timer (systemd-analyze where it is
// installed) and runs the service's ExecStart= lines with its Environment=;
// it returns how many ran.
func (rb *runbook) runSystemd(service, timer string) int {
	t := rb.t
	svc, tm := parseUnit(t, service), parseUnit(t, timer)
	assert.Assert(t, len(svc["Service.ExecStart"]) > 0, "%s has no ExecStart=", service)
	assert.Equal(t, len(tm["Timer.OnCalendar"]), 1, "%s: OnCalendar=", timer)
	assert.Assert(t, len(tm["Install.WantedBy"]) > 0, "%s: no [Install] WantedBy=, so enable does nothing", timer)
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", "verify", service, timer).CombinedOutput()
		assert.NilError(t, err, "systemd-analyze verify: %s", out)
		assert.Equal(t, strings.TrimSpace(string(out)), "", "systemd-analyze verify")
		out, err = exec.Command("systemd-analyze", "calendar", tm["Timer.OnCalendar"][0]).CombinedOutput()
		assert.NilError(t, err, "systemd-analyze calendar: %s", out)
	} else {
		t.Log("no systemd-analyze: the units were checked as key=value lines only")
	}
	var env []string
	for _, e := range svc["Service.Environment"] {
		env = append(env, strings.Fields(e)...)
	}
	for _, cmd := range svc["Service.ExecStart"] {
		rb.run("systemd "+filepath.Base(service), "sh", strings.TrimLeft(cmd, "-@:+!"), env, 0)
	}
	return len(svc["Service.ExecStart"])
}

// The rules hold on a page made to break them, without an engine.
func TestRunbookRules(t *testing.T) {
	for cmd, want := range map[string]bool{
		"docker dtr status":                           true,
		"docker --context dr-site dtr status":         true,
		"docker --context=x dtr backup create":        true,
		"x | docker dtr backup verify -":              true,
		"docker run -i --rm docker/dtr:2.9.4 restore": false,
		"docker context use prod":                     false,
		"docker-dtr backup verify x":                  false,
	} {
		assert.Equal(t, rbDockerDTR.MatchString(cmd), want, cmd)
	}

	page := strings.Join([]string{
		"<!-- runbook: placeholders -->",
		"| example | meaning |",
		"|---|---|",
		"| `0123456789ab` | a replica |",
		"",
		"<!-- runbook: skip=\"not here\" -->",
		"```console",
		"$ docker dtr status",
		"```",
		"```sh",
		"docker --context prod dtr backup create -o x",
		"```",
		"<!-- runbook: exit=one colour=red -->",
		"```console",
		"just output",
		"```",
		"<!-- runbook: id=ok exit=1 -->",
		"",
		"```console",
		"$ docker dtr status \\",
		"    --format json",
		"{\"quorum\": …}",
		"```",
		"<!-- runbook: skip=\"marker not on the line before\" -->",
		"text",
		"```console",
		"$ docker dtr backup verify x",
		"```",
	}, "\n")
	blocks, placeholders, errs := parseRunbook("page.md", page)
	assert.DeepEqual(t, placeholders, []string{"0123456789ab"})
	errs = append(errs, checkBlocks("page.md", blocks)...)
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	assert.DeepEqual(t, got, []string{
		`page.md:13: unknown runbook attribute "colour"`,
		"page.md:7: a block marked skip holds a docker dtr command",
		`page.md:10: a "sh" block, neither run nor a file, holds a docker dtr command`,
		"page.md:14: a console block without a \"$ \" command",
		"page.md:14: exit=one is not a number",
	})
	assert.Equal(t, len(blocks), 5)
	ok := blocks[3]
	assert.Equal(t, ok.attrs["id"], "ok")
	assert.Equal(t, len(ok.cmds), 1)
	assert.Equal(t, ok.cmds[0].text, "docker dtr status \\\n    --format json")
	assert.DeepEqual(t, ok.cmds[0].output, []string{`{"quorum": …}`})
	assert.Equal(t, len(blocks[4].attrs), 0, "a marker with text between it and the block does not count")

	assert.NilError(t, checkSample([]string{"x: verified …", "…"}, "x: verified, 3 tables"))
	assert.ErrorContains(t, checkSample([]string{"x: DTR 2.9.4, replica … on node …"}, "x: DTR 2.9.5, replica a on node b"), `"x: DTR 2.9.4, replica"`)
}
