package plugin

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// needZstd fails in CI without the zstd command (Debian's zstd, which
// .ci/run installs) and skips elsewhere.
func needZstd(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("zstd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("zstd is required in CI (Debian's zstd)")
		}
		t.Skip("no zstd")
	}
}

// shell runs a pipeline of the commands a user without the plugin has.
func shell(t *testing.T, script string, env ...string) string {
	t.Helper()
	cmd := exec.Command("bash", "-ec", "set -o pipefail; "+script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	assert.NilError(t, err, string(out))
	return string(out)
}

func TestCompressedBackupRoundTrip(t *testing.T) {
	needZstd(t)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q"}, fx.flags()...)
	restore := append([]string{"backup", "restore", "--force", "--dtr-version", "2.9.4", "-q"}, fx.flags()...)

	plain := filepath.Join(fx.dir, "backup-metadata.tar")
	_, errOut, code := run(t, nil, append(create, "-o", plain)...)
	assert.Equal(t, code, 0, errOut)
	backup := filepath.Join(fx.dir, "backup-metadata.tar.zst")
	out, errOut, code := run(t, nil, append(create, "-o", backup)...)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ", compressed (zstd) to "), out)
	data, err := os.ReadFile(backup)
	assert.NilError(t, err)
	assert.Assert(t, zstdstream.IsCompressed(data), "named .zst, the file is a zstd stream")
	st, err := os.Stat(backup)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))

	// What a user without the plugin has reads it: the same entries as the
	// plain archive.
	list := shell(t, "zstd -dc "+backup+" | tar -t")
	assert.Equal(t, list, shell(t, "tar -tf "+plain))
	assert.Assert(t, is.Contains(list, "dtr-backup-v2.9.4/"))

	// The commands recognise it by its bytes, not its name.
	renamed := filepath.Join(fx.dir, "no-hint.tar")
	assert.NilError(t, os.WriteFile(renamed, data, 0o600))
	out, errOut, code = run(t, nil, "backup", "verify", renamed)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
	out, errOut, code = run(t, nil, "backup", "inspect", "--format", "json", backup)
	assert.Equal(t, code, 0, errOut)
	plainOut, _, code := run(t, nil, "backup", "inspect", "--format", "json", plain)
	assert.Equal(t, code, 0)
	assert.DeepEqual(t, inspected(t, out)["tables"], inspected(t, plainOut)["tables"])

	// Restore, from the file and from standard input.
	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, nil, append(restore, "--no-safety-backup", renamed)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, bytes.NewReader(data), append(restore, "--no-safety-backup", "-")...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// --compress names it where the file's name does not; none refuses a
	// .zst name; anything else is wrong usage.
	byFlag := filepath.Join(fx.dir, "by-flag.tar")
	out, errOut, code = run(t, nil, append(create, "--compress", "zstd", "--format", "json", "-o", byFlag)...)
	assert.Equal(t, code, 0, errOut)
	head, err := os.ReadFile(byFlag)
	assert.NilError(t, err)
	assert.Assert(t, zstdstream.IsCompressed(head))
	var sum struct {
		Compression string `json:"compression"`
		Size        int64  `json:"size"`
		Bytes       int64  `json:"bytes"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &sum), out)
	assert.Equal(t, sum.Compression, "zstd")
	assert.Equal(t, sum.Size, int64(len(head)), "the summary's size is the file's")
	assert.Assert(t, sum.Size < sum.Bytes, "smaller than its documents")
	_, errOut, code = run(t, nil, append(create, "--compress", "none", "-o", filepath.Join(fx.dir, "x.tar.zst"))...)
	assert.Equal(t, code, 2)
	assert.Assert(t, is.Contains(lastLine(errOut), "--compress none, but -o "), errOut)
	_, errOut, code = run(t, nil, append(create, "--compress", "lz4", "-o", filepath.Join(fx.dir, "x.tar"))...)
	assert.Equal(t, code, 2)
	assert.Assert(t, is.Contains(lastLine(errOut), `--compress "lz4": expected zstd or none`), errOut)
	_, errOut, code = run(t, nil, "backup", "images", "-o", filepath.Join(fx.dir, "images.tar.zst"))
	assert.Equal(t, code, 2)
	assert.Assert(t, is.Contains(lastLine(errOut), "image backups are not compressed"), errOut)
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{"backup-metadata.tar", "backup-metadata.tar.zst", "by-flag.tar", "no-hint.tar"})

	// prune reads their manifests: each is a metadata backup, the newest
	// kept (a compressed one), the others removed, verified first.
	out, errOut, code = run(t, nil, "backup", "prune", fx.dir, "--keep-last", "1", "--dry-run", "--format", "json")
	assert.Equal(t, code, 0, errOut)
	var pruned struct {
		Files []struct {
			File   string `json:"file"`
			Kind   string `json:"kind"`
			Action string `json:"action"`
		} `json:"files"`
	}
	assert.NilError(t, json.Unmarshal([]byte(out), &pruned), out)
	assert.Equal(t, len(pruned.Files), 4, out)
	assert.Equal(t, pruned.Files[0].File, "by-flag.tar", out)
	for i, f := range pruned.Files {
		assert.Equal(t, f.Kind, "metadata", out)
		assert.Equal(t, f.Action == "keep", i == 0, out)
	}
	_, errOut, code = run(t, nil, "backup", "prune", fx.dir, "--keep-last", "3")
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dirEntries(t, fx.dir), []string{"backup-metadata.tar.zst", "by-flag.tar", "no-hint.tar"})

	// A changed byte and a cut file: one line naming the file, exit 1,
	// and the target untouched.
	damaged := filepath.Join(t.TempDir(), "damaged.tar.zst")
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x40
	assert.NilError(t, os.WriteFile(damaged, flipped, 0o600))
	for _, tc := range []struct {
		content []byte
		want    string
	}{
		{flipped, damaged + ": its zstd stream is corrupt"},
		{data[:len(data)*2/3], damaged + ": its zstd stream ends early: the file is truncated"},
	} {
		assert.NilError(t, os.WriteFile(damaged, tc.content, 0o600))
		for _, cmd := range [][]string{
			{"backup", "verify", damaged},
			{"backup", "inspect", damaged},
			append(restore, damaged),
		} {
			_, errOut, code = run(t, nil, cmd...)
			assert.Equal(t, code, 1, "%v: %s", cmd, errOut)
			assert.Assert(t, is.Contains(lastLine(errOut), tc.want), "%v", cmd)
		}
	}
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)
}

// inspected is the JSON of 'backup inspect --format json'.
func inspected(t *testing.T, out string) map[string]any {
	t.Helper()
	var rep map[string]any
	assert.NilError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Assert(t, rep["tables"] != nil, out)
	return rep
}

// Compressed, then encrypted: the OpenPGP message's plaintext is the zstd
// stream, which 'gpg -d | zstd -d' reads, and every command reads it as it
// is decrypted and decompressed.
func TestCompressedEncryptedBackupRoundTrip(t *testing.T) {
	needZstd(t)
	gpg := gpgCmd(t)
	fx := newFixture(t, rethinkserver.Options{})
	dtrtest.Seed(t, fx.driver)
	before := dtrtest.Snapshot(t, fx.driver)
	pass := filepath.Join(cryptTestdata, "passphrase.txt")
	create := append([]string{"backup", "create", "--dtr-version", "2.9.4", "-q"}, fx.flags()...)

	backup := filepath.Join(fx.dir, "backup-metadata.tar.zst.gpg")
	_, errOut, code := run(t, nil, append(create, "--encrypt", "--passphrase-file", pass, "-o", backup)...)
	assert.Equal(t, code, 0, errOut)
	data, err := os.ReadFile(backup)
	assert.NilError(t, err)
	assert.Assert(t, crypt.IsEncrypted(data[:512]))
	inner := filepath.Join(t.TempDir(), "inner")
	msg, err := gpg("--passphrase-file", pass, "-o", inner, "-d", backup)
	assert.NilError(t, err, string(msg))
	innerData, err := os.ReadFile(inner)
	assert.NilError(t, err)
	assert.Assert(t, zstdstream.IsCompressed(innerData), "compressed before it was encrypted")
	assert.Assert(t, len(data) < len(innerData)+4096, "ciphertext of the compressed stream")
	list := shell(t, "zstd -dc "+inner+" | tar -t")
	assert.Assert(t, is.Contains(list, "dtr-backup-v2.9.4/"))

	out, errOut, code := run(t, nil, "backup", "verify", "--passphrase-file", pass, backup)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
	_, errOut, code = run(t, nil, "backup", "inspect", "--passphrase-file", pass, backup)
	assert.Equal(t, code, 0, errOut)

	dtrtest.DropAll(t, fx.driver)
	_, errOut, code = run(t, nil, append([]string{"backup", "restore", "--dtr-version", "2.9.4", "--passphrase-file", pass, backup}, fx.flags()...)...)
	assert.Equal(t, code, 0, errOut)
	assert.DeepEqual(t, dtrtest.Snapshot(t, fx.driver), before)

	// The one a public key sealed, with --compress and no hint in its name.
	keyed := filepath.Join(fx.dir, "keyed.gpg")
	_, errOut, code = run(t, nil, append(create, "--compress", "zstd", "--recipient-file", filepath.Join(cryptTestdata, "ecc-pub.asc"), "-o", keyed)...)
	assert.Equal(t, code, 0, errOut)
	out, errOut, code = run(t, nil, "backup", "verify", "--identity-file", filepath.Join(cryptTestdata, "ecc-sec.asc"), keyed)
	assert.Equal(t, code, 0, errOut)
	assert.Assert(t, is.Contains(out, ": verified"))
}
