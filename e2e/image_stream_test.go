package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// An encrypted image backup is verified and restored as it is decrypted:
// with $TMPDIR missing, where no temporary file can be made, the restore
// writes every file back. And a content pass that reads other bytes than
// the verify read (a blob changed between the two passes, as a file
// replaced in place would give) is refused: the volume is emptied again,
// as it was, and the registry started again.
func TestImageRestoreStreamed(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	before := dtrfixture.VolumeFiles(t, c.Client, vol)

	dir := t.TempDir()
	pass := filepath.Join(dir, "pass.txt")
	assert.NilError(t, os.WriteFile(pass, backuptest.Passphrase, 0o600))
	plain, sealed := filepath.Join(dir, "images.tar"), filepath.Join(dir, "images.tar.gpg")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-q", "-o", plain)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "--encrypt", "--passphrase-file", pass, "-o", sealed)
	assert.Equal(t, res.code, 0, res.stderr)

	dtrfixture.WipeVolume(t, c.Client, vol)
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", "--passphrase-file", pass, sealed)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, sealed+": verified"))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--yes", "--passphrase-file", pass, sealed)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+sealed+" into volume "+vol))
	assert.Assert(t, is.Contains(res.stdout, "every file checked"))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)

	// The first pass (the verify) reads the backup, the second (the
	// content into the volume) the same bytes but for one byte of the
	// big layer.
	good, err := os.ReadFile(plain)
	assert.NilError(t, err)
	changed := bytes.Clone(good)
	at := blobOffset(t, good, pushed[0].Layers[len(pushed[0].Layers)-1].Digest)
	changed[at] ^= 1
	passes := 0
	src := func() (io.ReadCloser, error) {
		passes++
		if passes == 1 {
			return io.NopCloser(bytes.NewReader(good)), nil
		}
		return io.NopCloser(bytes.NewReader(changed)), nil
	}
	dtrfixture.WipeVolume(t, c.Client, vol)
	ctx := context.Background()
	cl, err := dtr.Discover(ctx, c.Client)
	assert.NilError(t, err)
	var replica *dtr.Replica
	for _, r := range cl.Replicas {
		if r.ID == rep.ID {
			replica = r
		}
	}
	assert.Assert(t, replica != nil)
	prog := progress.NewMode(io.Discard, progress.Quiet)
	report, chain, err := restore.VerifyImages(src, int64(len(good)), "changing.tar", dir, nil, prog)
	assert.NilError(t, err)
	assert.Assert(t, chain == nil)
	agent := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	look, err := restore.LookAtVolume(ctx, c.Client, replica, agent, true, nil, false, prog)
	assert.NilError(t, err)
	tgt, err := restore.PlanImages(&restore.Images{
		Name: "changing.tar", Open: src, Report: report, Replica: replica, Docker: c.Client,
		AgentBinary: agent, Progress: prog, Stderr: io.Discard,
	}, look, dir, filepath.Join(dir, "changing.tar"))
	assert.NilError(t, err)
	defer tgt.Close()
	assert.Assert(t, tgt.Plan.VolumeEmpty)
	err = restore.Run(ctx, tgt, restore.Options{Force: true, Log: t.Logf, Warn: t.Logf})
	assert.Assert(t, errors.Is(err, imagearchive.ErrChanged), "%v", err)
	assert.Assert(t, is.Contains(err.Error(), "emptied again"))
	assert.Equal(t, passes, 2)
	assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0, "nothing of the changed pass stays")
	assertRunning(t, c, registry)
	// A failed write removes its helper before the rollback: none is left.
	assertNoHelpers(t, c)
}

// blobOffset is where, in an image backup, the bytes of the blob of
// digest ("sha256:…") start.
func blobOffset(t *testing.T, archive []byte, digest string) int {
	t.Helper()
	r := bytes.NewReader(archive)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		assert.NilError(t, err)
		if filepath.Base(filepath.Dir(hdr.Name)) == digest[len("sha256:"):] && hdr.Size > 0 {
			// tar reads headers a block at a time, nothing ahead.
			return len(archive) - r.Len() + int(hdr.Size/2)
		}
	}
}
