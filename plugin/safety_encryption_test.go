package plugin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The safety backup of an encrypted backup is encrypted like it, on the
// real RethinkDB: for the passphrase, or to the public key of the
// identity that opened it. Without the secret it neither reads nor
// verifies; with it, restoring it puts back what the restore replaced.
// --safety-encryption none writes it in clear, and says what that costs.
func TestSafetyBackupEncryptedLikeTheBackup(t *testing.T) {
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	backedUp := dtrtest.Snapshot(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	secKey := filepath.Join(cryptTestdata, "ecc-sec.asc")
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q"}, fx.flags()...)
	sealed := filepath.Join(fx.dir, "backup-metadata.tar.gpg")
	_, errOut, code := run(t, nil, append(create, "--encrypt", "--passphrase-file", pass, "-o", sealed)...)
	assert.Equal(t, code, 0, errOut)
	keyed := filepath.Join(fx.dir, "keyed.tar.gpg")
	_, errOut, code = run(t, nil, append(create, "--recipient-file", filepath.Join(cryptTestdata, "ecc-pub.asc"), "-o", keyed)...)
	assert.Equal(t, code, 0, errOut)
	restoreArgs := func(file string, extra ...string) []string {
		return append(append([]string{"backup", "restore", "--force", "--dtr-version", "2.9.4", file}, extra...), fx.flags()...)
	}
	// What the restores replace: the seeded data less the tags, which the
	// safety backup must give back.
	change := func() map[string]dtrtest.TableSnapshot {
		_, err := r.DB("dtr2").Table("tags").Delete().RunWrite(fx.driver)
		assert.NilError(t, err)
		return dtrtest.Snapshot(t, fx.driver)
	}
	safetyOf := func(errOut string) string {
		m := regexp.MustCompile(`safety backup of the 12 tables this restore replaces: (\S+)`).FindStringSubmatch(errOut)
		assert.Assert(t, m != nil, errOut)
		return m[1]
	}
	assertSealed := func(path string) {
		t.Helper()
		assert.Assert(t, strings.HasSuffix(path, ".tar.gpg"), path)
		data, err := os.ReadFile(path)
		assert.NilError(t, err)
		assert.Assert(t, crypt.IsEncrypted(data), "the safety backup is an OpenPGP message")
		assert.Assert(t, len(data) < 262 || string(data[257:262]) != "ustar", "the safety backup is a plain tar")
		assert.Assert(t, !bytes.Contains(data, []byte(dtrtest.KeyInBackup)) && !bytes.Contains(data, []byte("PRIVATE KEY")), "key material readable in the safety backup")
		assert.Assert(t, !bytes.Contains(data, []byte("dtr2.properties")), "a table name readable in the safety backup")
		st, err := os.Stat(path)
		assert.NilError(t, err)
		assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	}

	t.Run("passphrase", func(t *testing.T) {
		changed := change()
		// The plan says it, in text and JSON.
		out, errOut, code := run(t, nil, restoreArgs(sealed, "--passphrase-file", pass, "--dry-run")...)
		assert.Equal(t, code, 0, errOut)
		assert.Assert(t, is.Regexp(`save the 12 tables it replaces to .*/safety-metadata-direct-\d{8}T\d{6}Z\.tar\.gpg, encrypted with the backup's passphrase\n`, out))
		out, errOut, code = run(t, nil, restoreArgs(sealed, "--passphrase-file", pass, "--dry-run", "--format", "json")...)
		assert.Equal(t, code, 0, errOut)
		var plan struct {
			SafetyBackup     string `json:"safetyBackup"`
			SafetyProtection string `json:"safetyProtection"`
		}
		assert.NilError(t, json.Unmarshal([]byte(out), &plan))
		assert.Assert(t, strings.HasSuffix(plan.SafetyBackup, ".tar.gpg"), plan.SafetyBackup)
		assert.Equal(t, plan.SafetyProtection, "encrypted with the backup's passphrase")

		_, errOut, code = run(t, nil, restoreArgs(sealed, "--passphrase-file", pass)...)
		assert.Equal(t, code, 0, errOut)
		assert.Assert(t, is.Contains(errOut, ".tar.gpg, encrypted with the backup's passphrase"), "the progress line says it")
		assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), backedUp)
		safety := safetyOf(errOut)
		assertSealed(safety)

		// Without the secret: no passphrase, a wrong one.
		_, errOut, code = run(t, nil, "backup", "verify", safety)
		assert.Equal(t, code, 1)
		assert.Assert(t, is.Contains(lastLine(errOut), "needs a passphrase"), errOut)
		wrong := filepath.Join(t.TempDir(), "wrong")
		assert.NilError(t, os.WriteFile(wrong, []byte("not it\n"), 0o600))
		_, errOut, code = run(t, nil, "backup", "verify", "--passphrase-file", wrong, safety)
		assert.Equal(t, code, 1)
		assert.Assert(t, is.Contains(lastLine(errOut), "wrong passphrase"), errOut)

		// With it: the previous data comes back.
		_, errOut, code = run(t, nil, restoreArgs(safety, "--passphrase-file", pass, "--no-safety-backup")...)
		assert.Equal(t, code, 0, errOut)
		assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), changed)
	})

	t.Run("public key", func(t *testing.T) {
		changed := change()
		_, errOut, code := run(t, nil, restoreArgs(keyed, "--identity-file", secKey)...)
		assert.Equal(t, code, 0, errOut)
		assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), backedUp)
		safety := safetyOf(errOut)
		assertSealed(safety)
		f, err := os.Open(safety)
		assert.NilError(t, err)
		info, err := crypt.Inspect(f)
		f.Close()
		assert.NilError(t, err)
		assert.Assert(t, !info.Symmetric && len(info.KeyIDs) == 1, "%+v", info)
		assert.Assert(t, is.Contains(errOut, ".tar.gpg, encrypted to key "+crypt.KeyID(info.KeyIDs[0])), "the progress line names the key")

		_, errOut, code = run(t, nil, "backup", "verify", safety)
		assert.Equal(t, code, 1)
		assert.Assert(t, is.Contains(lastLine(errOut), "give it with --identity-file"), errOut)
		_, errOut, code = run(t, nil, "backup", "verify", "--identity-file", filepath.Join(cryptTestdata, "rsa-sec.asc"), safety)
		assert.Equal(t, code, 1, "another identity's key: %s", errOut)

		_, errOut, code = run(t, nil, restoreArgs(safety, "--identity-file", secKey, "--no-safety-backup")...)
		assert.Equal(t, code, 0, errOut)
		assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), changed)
	})

	t.Run("in clear when asked", func(t *testing.T) {
		change()
		_, errOut, code := run(t, nil, restoreArgs(sealed, "--passphrase-file", pass, "--safety-encryption", "none")...)
		assert.Equal(t, code, 0, errOut)
		safety := safetyOf(errOut)
		assert.Assert(t, strings.HasSuffix(safety, ".tar"), safety)
		assert.Assert(t, is.Contains(errOut, "is written in clear (--safety-encryption none), although "+sealed+" is encrypted: it holds DTR's private keys"))
		// What the sealed ones are checked for is there in this one.
		data, err := os.ReadFile(safety)
		assert.NilError(t, err)
		assert.Assert(t, bytes.Contains(data, []byte(dtrtest.KeyInBackup)), "the check for key material finds it in clear")
		out, errOut, code := run(t, nil, "backup", "verify", safety)
		assert.Equal(t, code, 0, errOut)
		assert.Assert(t, is.Contains(out, ": verified"))
	})
}
