package parentcli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli-plugins/metadata"
	"gotest.tools/v3/assert"
)

func TestDockerGlobalFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		global []string
		ok     bool
	}{
		{[]string{"docker", "__complete", "dtr", "status", ""}, []string{}, true},
		{[]string{"docker", "--context", "prod", "__complete", "dtr", ""}, []string{"--context", "prod"}, true},
		{[]string{"/usr/bin/docker", "-c", "prod", "--config", "/etc/d", "__completeNoDesc", "dtr", ""}, []string{"-c", "prod", "--config", "/etc/d"}, true},
		// Not a completion: a normal run gets its flags itself.
		{[]string{"docker", "--context", "prod", "dtr", "status"}, nil, false},
		{[]string{"docker"}, nil, false},
		{nil, nil, false},
	} {
		global, ok := dockerGlobalFlags(tc.args)
		assert.Equal(t, ok, tc.ok, "%q", tc.args)
		assert.DeepEqual(t, global, tc.global)
	}
}

// Both ways of reading a command line read this test's own.
func TestProcessArgs(t *testing.T) {
	args, err := procArgs(os.Getpid())
	assert.NilError(t, err)
	assert.DeepEqual(t, args, os.Args)

	if _, err := exec.LookPath("ps"); err != nil {
		t.Skip("no ps")
	}
	args, err = psArgs(os.Getpid())
	assert.NilError(t, err)
	assert.DeepEqual(t, args, strings.Fields(strings.Join(os.Args, " ")))

	_, err = procArgs(-1)
	assert.Assert(t, err != nil)
	_, err = psArgs(1 << 30)
	assert.Assert(t, err != nil)
}

// The options come from the parent's command line only when the Docker CLI
// runs the plugin (its re-exec variable is set) for a completion.
func TestCompletionClientOptions(t *testing.T) {
	// Run by hand: the parent (go test) is not asked.
	t.Setenv(metadata.ReexecEnvvar, "")
	os.Unsetenv(metadata.ReexecEnvvar)
	opts := ClientOptions()
	assert.Equal(t, opts.Context, "")
	assert.Equal(t, len(opts.Hosts), 0)

	// Run by a docker CLI: a child (this test binary) of a script named
	// docker, run as `docker --context prod --config DIR __complete dtr …`.
	if os.Getenv("DTR_TEST_COMPLETION_CHILD") == "1" {
		return
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "opts")
	docker := filepath.Join(dir, "docker")
	script := "#!/bin/sh\n\"$DTR_TEST_BINARY\" -test.run '^TestCompletionClientOptionsChild$' > \"$DTR_TEST_OUT\"\nexit $?\n"
	assert.NilError(t, os.WriteFile(docker, []byte(script), 0o700))
	cmd := exec.Command(docker, "--context", "prod", "--config", dir, "__complete", "dtr", "backup", "create", "--replica-id", "")
	cmd.Env = append(os.Environ(), metadata.ReexecEnvvar+"=docker", "DTR_TEST_COMPLETION_CHILD=1",
		"DTR_TEST_BINARY="+os.Args[0], "DTR_TEST_OUT="+out)
	b, err := cmd.CombinedOutput()
	assert.NilError(t, err, "%s", b)
	got, err := os.ReadFile(out)
	assert.NilError(t, err)
	assert.Assert(t, strings.Contains(string(got), "context=prod config="+dir+"\n"), "%s", got)
}

// TestCompletionClientOptionsChild prints what ClientOptions read
// from its parent, for TestCompletionClientOptions.
func TestCompletionClientOptionsChild(t *testing.T) {
	if os.Getenv("DTR_TEST_COMPLETION_CHILD") != "1" {
		t.Skip("run by TestCompletionClientOptions")
	}
	opts := ClientOptions()
	os.Stdout.WriteString("context=" + opts.Context + " config=" + opts.ConfigDir + "\n")
}

func TestParseClientOptions(t *testing.T) {
	opts, err := parseClientOptions([]string{"-c", "prod", "--log-level", "error"})
	assert.NilError(t, err)
	assert.Equal(t, opts.Context, "prod")
	opts, err = parseClientOptions([]string{"-H", "tcp://ucp.example.com:443", "--tlsverify"})
	assert.NilError(t, err)
	assert.DeepEqual(t, opts.Hosts, []string{"tcp://ucp.example.com:443"})
	assert.Assert(t, opts.TLS && opts.TLSVerify)
	// A flag of a newer docker than this plugin's: the defaults instead.
	_, err = parseClientOptions([]string{"--some-future-flag", "x"})
	assert.ErrorContains(t, err, "unknown flag")
}
