package plugin

import (
	"bytes"
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
// decrypted, a compressed one as it is decompressed, one both as it is
// decrypted and decompressed: with $TMPDIR missing, where no temporary
// file can be made, each backup of the corpus, good or not restorable,
// gets the report and exit status of its plain copy.
func TestVerifyEncryptedWritesNoPlaintext(t *testing.T) {
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	pw, err := os.ReadFile(pass)
	assert.NilError(t, err)
	cases := []backuptest.Unrestorable{{Name: "restorable", Data: backuptest.Restorable(t)}}
	cases = append(cases, backuptest.UnrestorableBackups(t)...)
	dir := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	rcpt := &crypt.Recipients{Passphrase: []byte(strings.TrimSpace(string(pw)))}
	for i, c := range cases {
		plain := filepath.Join(dir, "plain.tar")
		assert.NilError(t, os.WriteFile(plain, c.Data, 0o600))
		for _, v := range []struct {
			name     string
			rcpt     *crypt.Recipients
			compress bool
		}{{"sealed.tar.gpg", rcpt, false}, {"packed.tar.zst", nil, true}, {"both.tar.zst.gpg", rcpt, true}} {
			sealed := filepath.Join(dir, v.name)
			out, err := backupfile.Create(sealed, nil, v.rcpt, v.compress)
			assert.NilError(t, err)
			_, err = out.Write(c.Data)
			assert.NilError(t, err)
			assert.NilError(t, out.Commit())
			for _, cmd := range []string{"verify", "inspect"} {
				for _, format := range []string{"", "json"} {
					wantOut, wantErr, wantCode := run(t, nil, "backup", cmd, "-q", "--format", format, plain)
					gotOut, gotErr, gotCode := run(t, nil, "backup", cmd, "-q", "--format", format, "--passphrase-file", pass, sealed)
					assert.Equal(t, gotCode, wantCode, "%d %s %s %s: %s", i, c.Name, v.name, cmd, gotErr)
					assert.Equal(t, strings.ReplaceAll(gotOut, sealed, plain), wantOut, "%s %s %s", c.Name, v.name, cmd)
					assert.Equal(t, strings.ReplaceAll(lastLine(gotErr), sealed, plain), lastLine(wantErr), "%s %s %s", c.Name, v.name, cmd)
				}
			}
		}
	}
}

// An encrypted image backup is verified and inspected as it is decrypted:
// with $TMPDIR missing, a good one, one with a blob changed and an
// incremental one (its earlier backup beside it) each get the report and
// exit status of their plain copies; a changed ciphertext is refused with
// the decryption's error and no report.
func TestVerifyEncryptedImagesWritesNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass.txt")
	assert.NilError(t, os.WriteFile(pass, backuptest.Passphrase, 0o600))
	base := filepath.Join(dir, "images-1.tar")
	backuptest.WriteImageBackup(t, base, backuptest.Day(1), backuptest.VolumeWith(t, "layer one", "layer two"))
	incr := filepath.Join(dir, "images-2.tar")
	backuptest.WriteImageBackup(t, incr, backuptest.Day(2), backuptest.VolumeWith(t, "layer one", "layer two", "layer three"), base)
	bad := filepath.Join(dir, "images-bad.tar")
	data, err := os.ReadFile(base)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(bad, bytes.Replace(data, []byte("layer two"), []byte("layer TWO"), 1), 0o600))
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	for _, plain := range []string{base, incr, bad} {
		sealed := plain + ".gpg"
		backuptest.EncryptFile(t, plain, sealed)
		for _, cmd := range []string{"verify", "inspect"} {
			for _, format := range []string{"", "json"} {
				wantOut, wantErr, wantCode := run(t, nil, "backup", cmd, "-q", "--format", format, plain)
				gotOut, gotErr, gotCode := run(t, nil, "backup", cmd, "-q", "--format", format, "--passphrase-file", pass, sealed)
				assert.Equal(t, gotCode, wantCode, "%s %s: %s", plain, cmd, gotErr)
				assert.Equal(t, strings.ReplaceAll(gotOut, sealed, plain), wantOut, "%s %s", plain, cmd)
				assert.Equal(t, strings.ReplaceAll(lastLine(gotErr), sealed, plain), lastLine(wantErr), "%s %s", plain, cmd)
			}
		}
	}
	_, _, code := run(t, nil, "backup", "verify", "-q", bad)
	assert.Equal(t, code, 1, "the changed blob is a problem")

	sealed, err := os.ReadFile(base + ".gpg")
	assert.NilError(t, err)
	sealed[len(sealed)/2] ^= 1
	tampered := filepath.Join(dir, "tampered.tar.gpg")
	assert.NilError(t, os.WriteFile(tampered, sealed, 0o600))
	out, stderr, code := run(t, nil, "backup", "verify", "-q", "--passphrase-file", pass, tampered)
	assert.Equal(t, code, 1)
	assert.Equal(t, out, "", "no report of a stream that failed")
	assert.Assert(t, strings.Contains(stderr, "cannot decrypt "+tampered), stderr)
}
