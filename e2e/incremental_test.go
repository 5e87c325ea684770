package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker/docker/api/types/image"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
)

// A full image backup, more images pushed, an incremental backup against
// the full one that holds only the new blobs and reads only them through
// the engine (counted by a proxy), its chain verified (and found
// broken without the full one), the volume lost, and the chain restored:
// every image, old and new, pulls back.
func TestIncrementalImageBackup(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))

	dir := t.TempDir()
	full := filepath.Join(dir, "backup-images-full.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-q", "-o", full)
	assert.Equal(t, res.code, 0, res.stderr)
	fullSize := size(t, full)
	assert.Assert(t, fullSize > dtrfixture.BigLayerSize)

	pushedMore := pushMore(t, c, rep)
	before := dtrfixture.VolumeFiles(t, c.Client, vol)

	// A stray file, a metadata-less non-backup, beside the backups: skipped.
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("backups of DTR\n"), 0o600))
	inc := filepath.Join(dir, "backup-images-inc.tar")
	// Through a proxy that counts what the engine sends: the agent is
	// told the blobs the full backup holds, and sends the volume in one
	// walk without their data, so the big layer does not cross again (the
	// whole volume did before), nor does a listing.
	p := newEngineProxy(t)
	assertNoHelpers(t, c) // so that the run has no stale helper to remove
	cmd := exec.Command("docker", "--config", cfg, "dtr", "backup", "images", "--since", dir, "-o", inc)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host())
	res = run(t, cmd, nil)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "; incremental: "))
	assert.Assert(t, is.Regexp(`reading what volume `+vol+` holds beyond the \d+ blobs the earlier backups hold, which are left out`, res.stderr))
	read := p.Down()
	// Once the agent has sent everything and exited, the helper removes
	// itself: the plugin does not wait for the removal (half a second).
	for _, r := range p.Requests() {
		assert.Assert(t, !strings.Contains(r, "> DELETE ") || !strings.Contains(r, "/containers/"), "the plugin removed its helper: %s", r)
	}
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if left := helperContainers(t, c); len(left) > 0 {
			return poll.Continue("helper %s is %s", left[0].Names, left[0].State)
		}
		return poll.Success()
	}, poll.WithTimeout(30*time.Second), poll.WithDelay(50*time.Millisecond))
	assert.Assert(t, is.Contains(res.stdout, "held by 1 earlier backup (backup-images-full.tar)"))
	incSize := size(t, inc)
	t.Logf("full backup %d bytes, incremental %d bytes (%.1f %%)", fullSize, incSize, 100*float64(incSize)/float64(fullSize))
	assert.Assert(t, incSize < fullSize/5, "incremental %d bytes, full %d", incSize, fullSize)
	t.Logf("the engine sent %d bytes for the incremental backup (%.1f %% of the full backup)", read, 100*float64(read)/float64(fullSize))
	assert.Assert(t, read < fullSize/5, "the engine sent %d bytes for an incremental backup whose bases hold all but %d bytes of %d", read, incSize, fullSize)

	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", inc)
	assert.Equal(t, res.code, 0, res.stderr)
	var inspected struct {
		ManifestSHA256 string
		DependsOn      []struct{ ManifestSHA256, File, Volume, ReplicaID string }
		Blobs          int
		OmittedBlobs   int
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &inspected))
	assert.Equal(t, len(inspected.DependsOn), 1)
	assert.Equal(t, inspected.DependsOn[0].File, "backup-images-full.tar")
	assert.Equal(t, inspected.DependsOn[0].Volume, vol)
	assert.Equal(t, inspected.OmittedBlobs, 15, "the first images' 15 blobs are in the full backup")
	assert.Assert(t, inspected.Blobs > 0)
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", full)
	assert.Equal(t, res.code, 0, res.stderr)
	var fullInspected struct{ ManifestSHA256 string }
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &fullInspected))
	assert.Equal(t, inspected.DependsOn[0].ManifestSHA256, fullInspected.ManifestSHA256)
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", inc)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "Incremental  depends on 1 backup (backup-images-full.tar)"))

	// The chain verifies; without the full backup it does not.
	res = docker(t, cfg, nil, "dtr", "backup", "verify", inc)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, inc+": verified"))
	assert.Assert(t, is.Contains(res.stdout, full+": found, lists the 15 blobs"))
	elsewhere := t.TempDir()
	moved := filepath.Join(elsewhere, "full.tar")
	assert.NilError(t, os.Rename(full, moved))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", inc)
	assert.Equal(t, res.code, 1, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "backup-images-full.tar: the earlier backup this one depends on (manifest sha256:"+fullInspected.ManifestSHA256))
	assert.Assert(t, is.Contains(res.stdout, "is not in "+dir))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", inc, "--from", elsewhere)
	assert.Equal(t, res.code, 0, "found by its hash under another name: %s", res.stdout)

	// Restoring without the chain changes nothing.
	dtrfixture.WipeVolume(t, c.Client, vol)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", inc)
	assert.Equal(t, res.code, 1, res.stderr)
	assert.Assert(t, is.Contains(res.stderr, "its chain of earlier backups is not complete"))
	assert.Assert(t, is.Contains(res.stderr, "nothing was changed"))
	assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0)

	// Lose the volume and restore the chain: every image pulls back.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", inc, "--from", elsewhere)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "with blobs read from "+moved))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", inc, "--from", elsewhere)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+inc+" into volume "+vol+" of replica "+rep.ID))
	assert.Assert(t, is.Contains(res.stdout, "every file checked; 15 blobs"))
	assert.Assert(t, is.Contains(res.stdout, "from "+moved))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertRunning(t, c, registry)
	c.Start(t, rep.ID, "registry")
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, append(pushed, pushedMore...))
	assertNoHelpers(t, c)
	assert.Assert(t, !strings.Contains(res.stderr, "safety backup"), "the volume was empty: no safety backup")
}

func size(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	assert.NilError(t, err)
	return st.Size()
}

// pushMore pushes new images with layers of their own (another seed),
// under other repositories so that the first ones' tags stay: all but
// big:1, so that what is new is small next to what was there.
func pushMore(t *testing.T, c *dtrfixture.Cluster, rep *dtrfixture.Replica) []dtrfixture.Pushed {
	t.Helper()
	var more []dtrfixture.TestImage
	for _, img := range dtrfixture.BuildImages(t, c.Client, 2) {
		if img.Repo == "big" {
			// Not pushed: removed now, or it would keep its parent, the
			// new lib/base:1, from PullAndCompare's removal.
			_, err := c.Client.ImageRemove(context.Background(), img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
			assert.NilError(t, err)
			continue
		}
		img.Repo = "next/" + img.Repo
		more = append(more, img)
	}
	return dtrfixture.Push(t, c.Client, rep.RegistryAddr, more)
}
