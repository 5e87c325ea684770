package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// run executes the command line in-process and returns stdout, stderr and
// the exit status the plugin would exit with.
func run(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	dcli, err := command.NewDockerCli(
		command.WithInputStream(io.NopCloser(stdin)),
		command.WithOutputStream(&out),
		command.WithErrorStream(&errb),
	)
	assert.NilError(t, err)
	code := execute(dcli, &out, &errb, args)
	return out.String(), errb.String(), code
}

// testContext is what commands run in: tests that need phases drawn
// faster set it (fastFrames).
var testContext = context.Background()

// execute runs the command line and returns the exit status the plugin
// would exit with, printing the error as it would.
func execute(dcli command.Cli, out, errb io.Writer, args []string) int {
	cmd := NewRootCmd("dtr", false, dcli)
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(errb)
	err := cmd.ExecuteContext(testContext)
	if err == nil {
		return 0
	}
	fmt.Fprintln(errb, err)
	var st cli.StatusError
	if errors.As(err, &st) {
		return st.StatusCode
	}
	return 1
}

func TestHelpGolden(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	for _, args := range [][]string{
		{"--help"},
		{"backup", "--help"},
		{"backup", "create", "--help"},
		{"backup", "verify", "--help"},
		{"backup", "inspect", "--help"},
		{"backup", "restore", "--help"},
		{"backup", "images", "--help"},
		{"status", "--help"},
		{"repair", "--help"},
	} {
		name := strings.Join(append([]string{"help"}, args[:len(args)-1]...), "-") + ".golden"
		t.Run(name, func(t *testing.T) {
			out, _, code := run(t, nil, args...)
			assert.Equal(t, code, 0)
			golden.Assert(t, out, name)
		})
	}
}

// fixtureArchive writes a small archive with fixed times, so its summary is stable.
func fixtureArchive(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup-metadata.tar")
	f, err := os.Create(p)
	assert.NilError(t, err)
	defer f.Close()
	started := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	tables := []archive.Table{
		{DB: "dtr2", Name: "properties", PrimaryKey: "id", WriteHook: json.RawMessage("null")},
		{DB: "notarysigner", Name: "private_keys", PrimaryKey: "key_id", WriteHook: json.RawMessage("null")},
	}
	archive.AssignDirs(tables)
	w, err := archive.NewWriter(f, archive.Info{Tool: "docker-dtr test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: started}, archive.Definitions{Tables: tables})
	assert.NilError(t, err)
	for _, tb := range tables {
		assert.NilError(t, w.BeginTable(tb))
		for i := range 3 {
			assert.NilError(t, w.WriteDocument(fmt.Appendf(nil, `{%q:"%d"}`, tb.PrimaryKey, i)))
		}
	}
	_, err = w.Finish([]archive.Exclusion{{DB: "dtr2", Table: "events", Reason: "--skip-events"}}, started.Add(3*time.Second))
	assert.NilError(t, err)
	return p
}

func TestVerifySummaryGolden(t *testing.T) {
	p := fixtureArchive(t)
	out, errOut, code := run(t, nil, "backup", "verify", p)
	assert.Equal(t, code, 0, errOut)
	golden.Assert(t, strings.ReplaceAll(out, p, "backup-metadata.tar"), "verify-summary.golden")

	out, _, code = run(t, nil, "backup", "inspect", "--format", "json", p)
	assert.Equal(t, code, 0)
	golden.Assert(t, strings.ReplaceAll(out, p, "backup-metadata.tar"), "inspect-json.golden")
}

func TestVerifyFromStdin(t *testing.T) {
	b, err := os.ReadFile(fixtureArchive(t))
	assert.NilError(t, err)
	out, _, code := run(t, bytes.NewReader(b), "backup", "verify", "-")
	assert.Equal(t, code, 0)
	assert.Assert(t, is.Contains(out, "standard input: verified"))
}

func TestVerifyDamagedGolden(t *testing.T) {
	p := fixtureArchive(t)
	b, err := os.ReadFile(p)
	assert.NilError(t, err)
	i := bytes.Index(b, []byte(`{"key_id":"1"}`))
	b[i+11] = '9'
	assert.NilError(t, os.WriteFile(p, b, 0o600))
	out, errOut, code := run(t, nil, "backup", "verify", p)
	assert.Equal(t, code, 1)
	golden.Assert(t, strings.ReplaceAll(out, p, "backup-metadata.tar"), "verify-damaged.golden")
	assert.Equal(t, strings.Count(errOut, "\n"), 1, "one line on stderr: %q", errOut)
	assert.Assert(t, is.Contains(errOut, p+" is not a valid backup: 1 problem found"))
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"backup", "verify"},
		{"backup", "verify", "a", "b"},
		{"backup", "verify", "--no-such-flag", "x"},
		{"backup", "create", "extra-arg"},
		{"backup", "restore", "--writers", "0", "x.tar"},
		{"backup", "restore", "--writers", "65", "x.tar"},
	} {
		_, errOut, code := run(t, nil, args...)
		assert.Equal(t, code, 2, "%v: %s", args, errOut)
	}
}

func TestCreateRefusesBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1"}, "-o/--output is required", 2},
		{[]string{"-o", "x.tar", "--rethinkdb-addr", "127.0.0.1:1"}, "--dtr-version is required", 2},
		{[]string{"-o", "x.tar", "--dtr-version", "latest", "--rethinkdb-addr", "127.0.0.1:1"}, `--dtr-version "latest"`, 2},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--replica-id", "XYZ", "--rethinkdb-addr", "127.0.0.1:1"}, `--replica-id "XYZ"`, 2},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--exclude", "events", "--rethinkdb-addr", "127.0.0.1:1"}, `--exclude "events": expected db.table`, 2},
		{[]string{"-o", "x.tar", "--rethinkdb-ca", "ca.pem"}, "--rethinkdb-ca needs --rethinkdb-addr; without it RethinkDB is reached through the Docker context", 2},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1", "--agent-binary", "x"}, "--agent-binary has no use with --rethinkdb-addr", 2},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1", "--rethinkdb-cert", "c.pem"}, "--rethinkdb-cert and --rethinkdb-key go together", 2},
		{[]string{"-o", "no/such/dir/x.tar", "--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1"}, "cannot write no/such/dir/x.tar", 1},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1", "--parallel", "-1"}, "--parallel -1: expected 1 or more", 2},
		{[]string{"-o", "x.tar", "--dtr-version", "2.9.4", "--rethinkdb-addr", "127.0.0.1:1"}, "connecting to rethinkdb at 127.0.0.1:1", 1},
	}
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range cases {
		_, errOut, code := run(t, nil, append([]string{"backup", "create"}, tc.args...)...)
		assert.Equal(t, code, tc.code, "%v: %s", tc.args, errOut)
		assert.Assert(t, is.Contains(errOut, tc.want))
		assert.Equal(t, strings.Count(errOut, "\n"), 1, "one line: %q", errOut)
	}
	left, _ := os.ReadDir(dir)
	assert.Equal(t, len(left), 0, "nothing written")
}

// --replica-id and --agent-binary are one flag group with one check, in
// every command that has them.
func TestReplicaFlagsCheckedAlike(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	missing := filepath.Join(dir, "docker-dtr-linux-arm64")
	for _, cmd := range [][]string{{"backup", "create", "--dtr-version", "2.9.4"}, {"backup", "images"}} {
		_, errOut, code := run(t, nil, append(cmd, "-o", "x.tar", "--replica-id", "XYZ")...)
		assert.Equal(t, code, 2, "%v: %s", cmd, errOut)
		assert.Equal(t, errOut, "--replica-id \"XYZ\": a replica id is 12 lowercase hex characters, such as 0123456789ab\n")
		_, errOut, code = run(t, nil, append(cmd, "-o", "x.tar", "--agent-binary", missing)...)
		assert.Equal(t, code, 1, "%v: %s", cmd, errOut)
		assert.Equal(t, errOut, "--agent-binary "+missing+": no such file: build static linux binaries with 'make cross' (bin/docker-dtr-linux-<arch>)\n")
	}
	left, _ := os.ReadDir(dir)
	assert.Equal(t, len(left), 0, "nothing written")
}

func TestRepairRefusesBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--replicas", "-1"}, "--replicas -1: expected 1 or more", 2},
		{[]string{"--no-safety-backup", "-o", "s.tar"}, "-o and --safety-dir place the safety backup, which --no-safety-backup leaves out", 2},
		{[]string{"--safety-dir", ".", "-o", "s.tar"}, "-o names the safety backup's file, --safety-dir its directory", 2},
		{[]string{"-o", "-"}, "-o -: the safety backup is a file", 2},
		{[]string{"--replica-id", "XYZ"}, `--replica-id "XYZ"`, 2},
		{[]string{"--format", "yaml"}, "yaml", 2},
		{[]string{"--rethinkdb-addr", "127.0.0.1:1"}, "--dtr-version is required with --rethinkdb-addr for the safety backup", 2},
		{[]string{"--rethinkdb-addr", "127.0.0.1:1", "--no-safety-backup"}, "connecting to rethinkdb at 127.0.0.1:1", 1},
		{[]string{"--rethinkdb-addr", "127.0.0.1:1", "--dtr-version", "2.9.4"}, "connecting to rethinkdb at 127.0.0.1:1", 1},
	}
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range cases {
		_, errOut, code := run(t, nil, append([]string{"repair"}, tc.args...)...)
		assert.Equal(t, code, tc.code, "%v: %s", tc.args, errOut)
		assert.Assert(t, is.Contains(errOut, tc.want))
		assert.Equal(t, strings.Count(errOut, "\n"), 1, "one line: %q", errOut)
	}
	left, _ := os.ReadDir(dir)
	assert.Equal(t, len(left), 0, "nothing written")
}
