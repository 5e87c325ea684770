package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"gotest.tools/v3/assert"
)

// An encrypted metadata backup is verified and inspected as it is
// decrypted: with $TMPDIR missing, where no temporary file can be made,
// each backup of the corpus, good or not restorable, gets the report and
// exit status of its plain copy.
func TestVerifyEncryptedWritesNoPlaintext(t *testing.T) {
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	pw, err := os.ReadFile(pass)
	assert.NilError(t, err)
	cases := []backuptest.Unrestorable{{Name: "restorable", Data: backuptest.Restorable(t)}}
	cases = append(cases, backuptest.UnrestorableBackups(t)...)
	dir := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	for i, c := range cases {
		plain := filepath.Join(dir, "plain.tar")
		sealed := filepath.Join(dir, "sealed.tar.gpg")
		assert.NilError(t, os.WriteFile(plain, c.Data, 0o600))
		out, err := backupfile.Create(sealed, nil, &crypt.Recipients{Passphrase: []byte(strings.TrimSpace(string(pw)))})
		assert.NilError(t, err)
		_, err = out.Write(c.Data)
		assert.NilError(t, err)
		assert.NilError(t, out.Commit())
		for _, cmd := range []string{"verify", "inspect"} {
			for _, format := range []string{"", "json"} {
				wantOut, wantErr, wantCode := run(t, nil, "backup", cmd, "-q", "--format", format, plain)
				gotOut, gotErr, gotCode := run(t, nil, "backup", cmd, "-q", "--format", format, "--passphrase-file", pass, sealed)
				assert.Equal(t, gotCode, wantCode, "%d %s %s: %s", i, c.Name, cmd, gotErr)
				assert.Equal(t, strings.ReplaceAll(gotOut, sealed, plain), wantOut, "%s %s", c.Name, cmd)
				assert.Equal(t, strings.ReplaceAll(lastLine(gotErr), sealed, plain), lastLine(wantErr), "%s %s", c.Name, cmd)
			}
		}
	}
}
