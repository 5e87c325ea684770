package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A nightly job that holds only the public key: a full image backup
// encrypted to it, more images pushed, an incremental backup encrypted to
// it against the full one, read through the full one's plain index with no
// secret given. Verify with the secret key checks the chain and the index
// (a swapped index is found); the volume is lost, and the chain restored
// with the secret key: every image, old and new, pulls back with its
// digest.
func TestIncrementalEncryptedToPublicKey(t *testing.T) {
	cfg := dockerConfig(t)
	t.Setenv("DTR_BACKUP_PASSPHRASE", "") // no secret of any kind
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	pub, sec := filepath.Join("..", "pkg", "crypt", "testdata", "ecc-pub.asc"), filepath.Join("..", "pkg", "crypt", "testdata", "ecc-sec.asc")

	dir := t.TempDir()
	full := filepath.Join(dir, "backup-images-full.tar.gpg")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--recipient-file", pub, "-o", full)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "; index "+full+".index"))
	st, err := os.Stat(full + ".index")
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	index, err := os.ReadFile(full + ".index")
	assert.NilError(t, err)
	assert.Assert(t, !strings.Contains(string(index), "repositories"), "no names in the index")
	fullSize := size(t, full)
	assert.Assert(t, fullSize > dtrfixture.BigLayerSize)

	pushedMore := pushMore(t, c, rep)
	before := dtrfixture.VolumeFiles(t, c.Client, vol)

	// Without its index, the encrypted full backup cannot serve: one line.
	assert.NilError(t, os.Rename(full+".index", full+".index.away"))
	inc := filepath.Join(dir, "backup-images-inc.tar.gpg")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--recipient-file", pub, "--since", full, "-o", inc)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "--since "+full+": encrypted, and no index beside it"))
	assert.Equal(t, strings.Count(strings.TrimSpace(res.stderr), "\n"), 0, res.stderr)
	_, err = os.Stat(inc)
	assert.Assert(t, os.IsNotExist(err), "nothing written")
	assert.NilError(t, os.Rename(full+".index.away", full+".index"))

	// The public key only: the incremental backup reads the full one's index.
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--progress", "plain", "--recipient-file", pub, "--since", full, "-o", inc)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "says its index backup-images-full.tar.gpg.index"))
	assert.Assert(t, is.Contains(res.stdout, "; incremental: "))
	assert.Assert(t, is.Contains(res.stdout, "held by 1 earlier backup (backup-images-full.tar.gpg)"))
	assert.Assert(t, is.Contains(res.stdout, ", encrypted to 1 recipient file"))
	incSize := size(t, inc)
	t.Logf("encrypted full backup %d bytes, encrypted incremental %d bytes (%.1f %%)", fullSize, incSize, 100*float64(incSize)/float64(fullSize))
	assert.Assert(t, incSize < fullSize/5, "incremental %d bytes, full %d", incSize, fullSize)

	// With the secret key the chain and both indexes verify.
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--identity-file", sec, inc)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, inc+": verified"))
	assert.Assert(t, is.Contains(res.stdout, full+": found, lists the 15 blobs"))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--identity-file", sec, full)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	// A swapped index is found.
	incIndex, err := os.ReadFile(inc + ".index")
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(full+".index", incIndex, 0o600))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--identity-file", sec, full)
	assert.Equal(t, res.code, 1, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "the index of another backup"))
	assert.NilError(t, os.WriteFile(full+".index", index, 0o600))

	// Lose the volume and restore the chain with the secret key.
	dtrfixture.WipeVolume(t, c.Client, vol)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", "--identity-file", sec, inc)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+inc+" into volume "+vol+" of replica "+rep.ID))
	assert.Assert(t, is.Contains(res.stdout, "every file checked; 15 blobs"))
	assert.Assert(t, is.Contains(res.stdout, "from "+full))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertRunning(t, c, registry)
	c.Start(t, rep.ID, "registry")
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, append(pushed, pushedMore...))
	assertNoHelpers(t, c)
}
