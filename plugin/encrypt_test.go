package plugin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/passphrase"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Test keys of pkg/crypt; nothing they protect matters.
var cryptTestdata = filepath.Join("..", "pkg", "crypt", "testdata")

// gpgCmd runs the real gpg in a throwaway home; without gpg the test skips,
// except in CI, which installs it.
func gpgCmd(t *testing.T) func(args ...string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("gpg is required in CI (Debian's gnupg)")
		}
		t.Skip("no gpg")
	}
	// gpg-agent's socket path must be short.
	home, err := os.MkdirTemp("/tmp", "gpg")
	assert.NilError(t, err)
	env := append(os.Environ(), "GNUPGHOME="+home, "LC_ALL=C")
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "gpg-agent")
		kill.Env = env
		kill.Run()
		os.RemoveAll(home)
	})
	return func(args ...string) ([]byte, error) {
		cmd := exec.Command("gpg", append([]string{"--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--trust-model", "always"}, args...)...)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestEncryptedBackupRoundTrip(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	backup := filepath.Join(fx.dir, "backup-metadata.tar.gpg")
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q"}, fx.flags()...)

	_, errOut, code := run(t, nil, append(create, "--encrypt", "--passphrase-file", pass, "-o", backup)...)
	assert.Equal(t, code, 0, errOut)
	data, err := os.ReadFile(backup)
	assert.NilError(t, err)
	assert.Assert(t, crypt.IsEncrypted(data[:512]), "the file is an OpenPGP message")
	assert.Assert(t, !strings.Contains(string(data), "dtr-backup-v"), "nothing in the clear")
	st, err := os.Stat(backup)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))

	// The passphrase from a file, from the environment; none at all.
	out, errOut, code := run(t, nil, "backup", "verify", "--passphrase-file", pass, backup)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
	assert.Assert(t, is.Contains(errOut, "encrypted with a passphrase"))
	pw, err := passphrase.ReadFile(pass)
	assert.NilError(t, err)
	t.Setenv(passphraseEnv, string(pw))
	_, errOut, code = run(t, nil, "backup", "inspect", backup)
	assert.Equal(t, code, 0, errOut)
	os.Unsetenv(passphraseEnv)
	_, errOut, code = run(t, nil, "backup", "verify", backup)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "needs a passphrase: give --passphrase-file FILE, set $DTR_BACKUP_PASSPHRASE, or run on a terminal"))

	// A wrong passphrase, a changed byte, a cut file: each its own error.
	wrong := filepath.Join(t.TempDir(), "wrong")
	assert.NilError(t, os.WriteFile(wrong, []byte("not it\n"), 0o600))
	_, errOut, code = run(t, nil, "backup", "verify", "--passphrase-file", wrong, backup)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "cannot decrypt "+backup+": wrong passphrase"))
	damaged := filepath.Join(t.TempDir(), "damaged.gpg")
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x01
	assert.NilError(t, os.WriteFile(damaged, flipped, 0o600))
	_, errOut, code = run(t, nil, "backup", "verify", "--passphrase-file", pass, damaged)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "integrity check failed"), errOut)
	assert.Assert(t, is.Contains(lastLine(errOut), "nothing decrypted was used"))
	assert.NilError(t, os.WriteFile(damaged, data[:len(data)-10], 0o600))
	_, errOut, code = run(t, nil, "backup", "verify", "--passphrase-file", pass, damaged)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "truncated"), errOut)
	// A damaged backup is never restored: the target is untouched.
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--force", "--dtr-version", "2.9.4", "--passphrase-file", pass, damaged}, fx.flags()...)...)
	assert.Equal(t, code, 1, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// Restore decrypts, verifies, then loads.
	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--dtr-version", "2.9.4", "--passphrase-file", pass, backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	left, err := filepath.Glob(filepath.Join(os.TempDir(), "docker-dtr-decrypted-*"))
	assert.NilError(t, err)
	assert.Equal(t, len(left), 0, "decrypted temporary files left: %v", left)

	// Public keys: the job holds no secret; reading needs the secret key.
	keyed := filepath.Join(fx.dir, "keyed.tar.gpg")
	_, errOut, code = run(t, nil, append(create, "--recipient-file", filepath.Join(cryptTestdata, "ecc-pub.asc"), "-o", keyed)...)
	assert.Equal(t, code, 0, errOut)
	_, errOut, code = run(t, nil, "backup", "verify", keyed)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "give it with --identity-file"), errOut)
	out, errOut, code = run(t, nil, "backup", "verify", "--identity-file", filepath.Join(cryptTestdata, "ecc-sec.asc"), keyed)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
	_, errOut, code = run(t, nil, "backup", "verify", "--identity-file", filepath.Join(cryptTestdata, "ecc-pub.asc"), keyed)
	assert.Equal(t, code, 1)
	assert.Assert(t, is.Contains(lastLine(errOut), "--identity-file: "), errOut)
	assert.Assert(t, is.Contains(lastLine(errOut), "a secret key is needed"), errOut)

	// gpg reads ours, and ours reads gpg's, both ways.
	gpg := gpgCmd(t)
	plain := filepath.Join(fx.dir, "from-gpg.tar")
	msg, err := gpg("--passphrase-file", pass, "-o", plain, "-d", backup)
	assert.NilError(t, err, string(msg))
	out, errOut, code = run(t, nil, "backup", "verify", plain)
	assert.Equal(t, code, 0, errOut)
	msg, err = gpg("--import", filepath.Join(cryptTestdata, "ecc-sec.asc"))
	assert.NilError(t, err, string(msg))
	keyedPlain := filepath.Join(fx.dir, "keyed.tar")
	msg, err = gpg("-o", keyedPlain, "-d", keyed)
	assert.NilError(t, err, string(msg))
	_, errOut, code = run(t, nil, "backup", "verify", keyedPlain)
	assert.Equal(t, code, 0, errOut)

	symmetric := filepath.Join(fx.dir, "gpg-c.tar.gpg")
	msg, err = gpg("--passphrase-file", pass, "--symmetric", "-o", symmetric, plain)
	assert.NilError(t, err, string(msg))
	toKey := filepath.Join(fx.dir, "gpg-e.tar.asc")
	msg, err = gpg("-a", "-e", "-r", "ecc@example.com", "-o", toKey, plain)
	assert.NilError(t, err, string(msg))
	_, errOut, code = run(t, nil, "backup", "verify", "--identity-file", filepath.Join(cryptTestdata, "ecc-sec.asc"), toKey)
	assert.Equal(t, code, 0, errOut)
	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--dtr-version", "2.9.4", "--passphrase-file", pass, symmetric}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
}

func TestEncryptFlags(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	out := filepath.Join(t.TempDir(), "b.tar")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--passphrase-file", "p"}, "--passphrase-file needs --encrypt"},
		{[]string{"--encrypt", "--passphrase-file", "p", "--recipient-file", "k"}, "--passphrase-file and --recipient-file: give one"},
		{[]string{"--recipient-file", "/nonexistent/key.asc"}, "--recipient-file: open /nonexistent/key.asc"},
		{[]string{"--encrypt", "--passphrase-file", "/nonexistent/pass"}, "--passphrase-file: open /nonexistent/pass"},
	} {
		for _, cmd := range []string{"create", "images"} {
			_, errOut, code := run(t, nil, append([]string{"backup", cmd, "-o", out}, tc.args...)...)
			assert.Equal(t, code, 1, "%s %v: %s", cmd, tc.args, errOut)
			assert.Assert(t, is.Contains(lastLine(errOut), tc.want), "%s %v", cmd, tc.args)
			_, err := os.Stat(out)
			assert.Assert(t, os.IsNotExist(err), "nothing written")
		}
	}
}
