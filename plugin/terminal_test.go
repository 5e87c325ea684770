package plugin

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// runOnTerminal runs the command with a pseudo-terminal as standard input,
// typing the given lines into it, as a person at the prompt would.
func runOnTerminal(t *testing.T, typed []string, args ...string) (string, string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	assert.NilError(t, err)
	defer ptmx.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptmx) // what the terminal echoes
	for _, line := range typed {
		_, err := ptmx.Write([]byte(line + "\n"))
		assert.NilError(t, err)
	}
	var out, errb bytes.Buffer
	dcli, err := command.NewDockerCli(command.WithInputStream(tty), command.WithOutputStream(&out), command.WithErrorStream(&errb))
	assert.NilError(t, err)
	assert.Assert(t, dcli.In().IsTerminal())
	code := execute(dcli, &out, &errb, args)
	return out.String(), errb.String(), code
}

func TestPromptsOnATerminal(t *testing.T) {
	t.Setenv(passphraseEnv, "")
	os.Unsetenv(passphraseEnv)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	backup := filepath.Join(fx.dir, "b.tar.gpg")
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q", "--encrypt", "-o", backup}, fx.flags()...)

	// The passphrase is asked twice, without echo; two that differ write nothing.
	_, errOut, code := runOnTerminal(t, []string{"correct horse", "correct hose"}, create...)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "the two passphrases differ: nothing was written"))
	_, err := os.Stat(backup)
	assert.Assert(t, os.IsNotExist(err))
	_, errOut, code = runOnTerminal(t, []string{"correct horse", "correct horse"}, create...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(errOut, "Passphrase for the new backup: "))
	assert.Assert(t, is.Contains(errOut, "The same passphrase again: "))
	assert.Assert(t, !strings.Contains(errOut, "correct horse"), "the passphrase is never shown")

	// Reading asks once.
	out, errOut, code := runOnTerminal(t, []string{"correct horse"}, "backup", "verify", backup)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
	assert.Assert(t, is.Contains(errOut, "Passphrase for "+backup+" (encrypted with a passphrase): "))

	// Restore asks before it changes anything; "no" changes nothing.
	restore := append([]string{"backup", "restore", "--dtr-version", "2.9.4", backup}, fx.flags()...)
	_, errOut, code = runOnTerminal(t, []string{"correct horse", "n"}, restore...)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(errOut, "replacing 12 tables that hold data now? [y/N] "))
	assert.Assert(t, is.Contains(lastLine(errOut), "restore cancelled at the prompt: nothing was changed"))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	assert.Equal(t, len(dirEntries(t, fx.dir)), 1, "no safety backup: %v", dirEntries(t, fx.dir))

	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = runOnTerminal(t, []string{"correct horse", "y"}, restore...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(errOut, "creating 12 tables? [y/N] "))
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
}
