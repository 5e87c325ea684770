package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Restoring an encrypted backup through the context writes its safety
// backup encrypted like it: for the passphrase (metadata) or to the public
// key of the identity that opened it (images). Without the secret it does
// not verify, it is not a tar, and what it protects is not readable in it;
// restoring it with the secret puts back what the restore replaced.
func TestEncryptedSafetyBackupThroughTheContext(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry", "api"}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	dtrtest.Seed(t, driver)
	vol := "dtr-registry-" + rep.ID
	dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 3))
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "passphrase")
	assert.NilError(t, os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600))
	wrong := filepath.Join(t.TempDir(), "wrong")
	assert.NilError(t, os.WriteFile(wrong, []byte("not it\n"), 0o600))
	testdata := filepath.Join("..", "pkg", "crypt", "testdata")
	pub, sec := filepath.Join(testdata, "ecc-pub.asc"), filepath.Join(testdata, "ecc-sec.asc")

	// assertSealed: not a tar, an OpenPGP message, none of secrets readable.
	assertSealed := func(t *testing.T, path string, secrets ...string) {
		t.Helper()
		assert.Assert(t, strings.HasSuffix(path, ".tar.gpg"), path)
		out, err := exec.Command("tar", "-tf", path).CombinedOutput()
		assert.Assert(t, err != nil, "tar lists the safety backup: %s", out)
		data, err := os.ReadFile(path)
		assert.NilError(t, err)
		assert.Assert(t, crypt.IsEncrypted(data))
		for _, s := range secrets {
			assert.Assert(t, !bytes.Contains(data, []byte(s)), "%.30q… readable in the safety backup", s)
		}
		st, err := os.Stat(path)
		assert.NilError(t, err)
		assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	}

	t.Run("metadata, passphrase", func(t *testing.T) {
		sealed := filepath.Join(dir, "backup-metadata.tar.gpg")
		res := docker(t, cfg, nil, "dtr", "backup", "create", "-q", "--encrypt", "--passphrase-file", pass, "-o", sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		backedUp := dtrtest.Snapshot(t, driver)
		_, err := r.DB("dtr2").Table("tags").Delete().RunWrite(driver)
		assert.NilError(t, err)
		changed := dtrtest.Snapshot(t, driver)

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--format", "json", "--replica-id", rep.ID, "--passphrase-file", pass, sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		var plan struct{ SafetyBackup, SafetyProtection string }
		assert.NilError(t, json.Unmarshal([]byte(res.stdout), &plan))
		assert.Equal(t, plan.SafetyProtection, "encrypted with the backup's passphrase")
		assert.Assert(t, strings.HasSuffix(plan.SafetyBackup, ".tar.gpg"), plan.SafetyBackup)

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "-y", "--progress", "plain", "--replica-id", rep.ID, "--passphrase-file", pass, sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.DeepEqual(t, dtrtest.Snapshot(t, driver), backedUp)
		m := regexp.MustCompile(`safety backup of the 12 tables this restore replaces: (\S+)`).FindStringSubmatch(res.stderr)
		assert.Assert(t, m != nil, res.stderr)
		safety := m[1]
		assert.Assert(t, is.Contains(res.stderr, safety+", encrypted with the backup's passphrase"), "the progress line says it")
		assertSealed(t, safety, dtrtest.KeyInBackup, "PRIVATE KEY", "dtr2.tags")

		res = docker(t, cfg, nil, "dtr", "backup", "verify", safety)
		assert.Equal(t, res.code, 1, res.stdout)
		assert.Assert(t, is.Contains(lastLine(res.stderr), "needs a passphrase"))
		res = docker(t, cfg, nil, "dtr", "backup", "verify", "--passphrase-file", wrong, safety)
		assert.Equal(t, res.code, 1, res.stdout)
		assert.Assert(t, is.Contains(lastLine(res.stderr), "wrong passphrase"))

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "-y", "--no-safety-backup", "--replica-id", rep.ID, "--passphrase-file", pass, safety)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.DeepEqual(t, dtrtest.Snapshot(t, driver), changed)
		assertNoHelpers(t, c)
	})

	t.Run("images, public key", func(t *testing.T) {
		// The metadata restores above started DTR's api again last.
		c.WaitReady(t, rep.ID)
		sealed := filepath.Join(dir, "backup-images.tar.gpg")
		res := docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--recipient-file", pub, "-o", sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		// A file the backup holds, changed: the restore writes it back as
		// it was backed up, and only the safety backup holds it as it is.
		backedUp := dtrfixture.VolumeFiles(t, c.Client, vol)
		var link string
		for name := range backedUp {
			if strings.HasSuffix(name, "/link") && (link == "" || name < link) {
				link = name
			}
		}
		assert.Assert(t, link != "", "no link file in %v", backedUp)
		const marker = "what the volume held before the restore, 7f3c9a"
		putFile(t, c, vol, link, marker)
		changed := dtrfixture.VolumeFiles(t, c.Client, vol)
		assert.Assert(t, changed[link] != backedUp[link])

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", "--force", "--replica-id", rep.ID, "--identity-file", sec, sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.Assert(t, is.Regexp(`save what the volume holds now to \S+\.tar\.gpg \(a safety backup, encrypted to key 0x[0-9A-F]{16}\)`, res.stdout))

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", "--progress", "plain", "--replica-id", rep.ID, "--identity-file", sec, sealed)
		assert.Equal(t, res.code, 0, res.stderr)
		safety := safetyBackupPath(t, res.stderr, vol)
		f, err := os.Open(safety)
		assert.NilError(t, err)
		info, err := crypt.Inspect(f)
		f.Close()
		assert.NilError(t, err)
		assert.Assert(t, !info.Symmetric && len(info.KeyIDs) == 1, "%+v", info)
		assert.Assert(t, is.Contains(res.stderr, safety+", encrypted to key "+crypt.KeyID(info.KeyIDs[0])))
		assertSealed(t, safety, marker, link)
		assert.Equal(t, dtrfixture.VolumeFiles(t, c.Client, vol)[link], backedUp[link], "restored as backed up")

		res = docker(t, cfg, nil, "dtr", "backup", "verify", safety)
		assert.Equal(t, res.code, 1, res.stdout)
		assert.Assert(t, is.Contains(lastLine(res.stderr), "give it with --identity-file"))
		res = docker(t, cfg, nil, "dtr", "backup", "verify", "--identity-file", filepath.Join(testdata, "rsa-sec.asc"), safety)
		assert.Equal(t, res.code, 1, "another identity: %s", res.stdout)

		res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", "--no-safety-backup", "--replica-id", rep.ID, "--identity-file", sec, safety)
		assert.Equal(t, res.code, 0, res.stderr)
		assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), changed)
		assertNoHelpers(t, c)
	})
}
