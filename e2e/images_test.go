package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// These tests push images of their own into the fixture's real registry
// (distribution v3, storing in dtr-registry-<id> at /storage), back the
// volume up through the plugin, and restore it.

// seedRegistryMetadata writes DTR-shaped tags, manifests and blobs
// documents that reference what was pushed, as DTR's API would.
func seedRegistryMetadata(t *testing.T, driver *r.Session, pushed []dtrfixture.Pushed) {
	t.Helper()
	_, err := r.DBCreate("dtr2").RunWrite(driver)
	assert.NilError(t, err)
	var tags, manifests, blobs []any
	seen := map[string]bool{}
	for _, p := range pushed {
		tags = append(tags, map[string]any{"id": p.Repo + ":" + p.Tag, "repository": p.Repo, "name": p.Tag, "digest": p.Digest})
		var layers []any
		for _, l := range p.Layers {
			layers = append(layers, map[string]any{"digest": l.Digest, "size": l.Size, "mediaType": l.MediaType})
		}
		if id := p.Repo + "@" + p.Digest; !seen[id] {
			seen[id] = true
			manifests = append(manifests, map[string]any{"id": id, "repository": p.Repo, "digest": p.Digest,
				"configDigest": p.Config.Digest, "layers": layers})
		}
		for _, b := range append([]dtrfixture.Blob{p.Config}, p.Layers...) {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				blobs = append(blobs, map[string]any{"id": b.Digest, "size": b.Size})
			}
		}
	}
	for name, docs := range map[string][]any{"tags": tags, "manifests": manifests, "blobs": blobs} {
		_, err := r.DB("dtr2").TableCreate(name).RunWrite(driver)
		assert.NilError(t, err)
		_, err = r.DB("dtr2").Table(name).Insert(docs).RunWrite(driver)
		assert.NilError(t, err)
	}
}

func assertRunning(t *testing.T, c *dtrfixture.Cluster, name string) {
	t.Helper()
	info, err := c.Client.ContainerInspect(context.Background(), name)
	assert.NilError(t, err)
	assert.Assert(t, info.State.Running, "%s is %s", name, info.State.Status)
}

func TestImageBackupRoundTrip(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 1))
	before := dtrfixture.VolumeFiles(t, c.Client, vol)
	driver := c.Connect(t, rep.ID)
	seedRegistryMetadata(t, driver, pushed)

	dir := t.TempDir()
	meta := filepath.Join(dir, "backup-metadata.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-q", "-o", meta)
	assert.Equal(t, res.code, 0, res.stderr)

	images := filepath.Join(dir, "backup-images.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, images+": DTR 2.9.4, replica "+rep.ID+", volume "+vol+": "))
	st, err := os.Stat(images)
	assert.NilError(t, err)
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600))
	assert.Assert(t, st.Size() > dtrfixture.BigLayerSize, "the 50 MiB layer is in it")
	assertNoHelpers(t, c)
	assertRunning(t, c, registry)

	// A plain tar: tar lists it, and every blob is under the volume's name.
	out, err := exec.Command("tar", "-tf", images).Output()
	assert.NilError(t, err)
	listing := strings.Split(strings.TrimSpace(string(out)), "\n")
	assert.Equal(t, listing[0], vol+"/")
	assert.Equal(t, listing[len(listing)-1], "docker-dtr-images.jsonl")
	for _, p := range pushed {
		for _, l := range p.Layers {
			assert.Assert(t, is.Contains(string(out), vol+"/"+dtrfixture.BlobPath(l.Digest)))
		}
	}

	res = docker(t, cfg, nil, "dtr", "backup", "verify", images)
	assert.Equal(t, res.code, 0, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, images+": verified"))
	res = docker(t, cfg, nil, "dtr", "backup", "inspect", "--format", "json", images)
	assert.Equal(t, res.code, 0, res.stderr)
	var inspected struct {
		Kind, Volume, ReplicaID string
		Blobs                   int
	}
	assert.NilError(t, json.Unmarshal([]byte(res.stdout), &inspected))
	assert.Equal(t, inspected.Kind, "docker-dtr images")
	assert.Equal(t, inspected.Volume, vol)
	assert.Equal(t, inspected.ReplicaID, rep.ID)
	assert.Equal(t, inspected.Blobs, 15, "5 layers, 5 configs, 5 manifests")

	// Streamed to standard output, and verified from standard input.
	res = docker(t, cfg, nil, "dtr", "backup", "images", "-q", "-o", "-")
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Equal(t, res.stderr, "")
	res = docker(t, cfg, []byte(res.stdout), "dtr", "backup", "verify", "-")
	assert.Equal(t, res.code, 0, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "standard input: verified"))
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images, "--metadata", meta)
	assert.Equal(t, res.code, 0, res.stdout+res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "every referenced blob is in the image backup"))

	// Metadata that references a blob the image backup does not hold.
	ghost := make([]byte, 32)
	rand.Read(ghost)
	ghostDigest := "sha256:" + hex.EncodeToString(ghost)
	_, err = r.DB("dtr2").Table("tags").Insert(map[string]any{"id": "team/ghost:1", "repository": "team/ghost", "name": "1", "digest": ghostDigest}).RunWrite(driver)
	assert.NilError(t, err)
	meta2 := filepath.Join(dir, "backup-metadata-2.tar")
	res = docker(t, cfg, nil, "dtr", "backup", "create", "-q", "-o", meta2)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images, "--metadata", meta2)
	assert.Equal(t, res.code, 1, res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "1 blob missing from the image backup:"))
	assert.Assert(t, is.Contains(res.stdout, ghostDigest+" (referenced by [team/ghost:1])"))
	assert.Equal(t, strings.TrimSpace(res.stderr), images+" lacks 1 blob that "+meta2+" references (listed above)")

	// Restoring over the live volume is refused; nothing is stopped.
	res = docker(t, cfg, nil, "dtr", "backup", "restore", images)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "volume "+vol+" of replica "+rep.ID+" is not empty: refusing to restore"))
	assertRunning(t, c, registry)

	// Lose the volume, restore it, and pull every image back.
	dtrfixture.WipeVolume(t, c.Client, vol)
	assert.Equal(t, len(dtrfixture.VolumeFiles(t, c.Client, vol)), 0)
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--dry-run", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "stop "+registry))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", images)
	assert.Equal(t, res.code, 0, res.stderr)
	assert.Assert(t, is.Contains(res.stdout, "restored "+images+" into volume "+vol+" of replica "+rep.ID))
	assert.Assert(t, is.Contains(res.stdout, "every file checked"))
	assert.Assert(t, is.Contains(res.stderr, "stopped "+registry))
	assert.Assert(t, is.Contains(res.stderr, "started "+registry+" again"))
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)
	assertRunning(t, c, registry)
	c.Start(t, rep.ID, "registry") // waits until the registry answers again
	dtrfixture.PullAndCompare(t, c.Client, rep.RegistryAddr, pushed)
	assertNoHelpers(t, c)
}

func TestImageBackupFaults(t *testing.T) {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	vol := "dtr-registry-" + rep.ID
	registry := rep.Containers["registry"]
	pushed := dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 2))
	dir := t.TempDir()

	// A blob corrupted in the live registry: named, the backup completes,
	// and the exit status says so unless --allow-corrupt-blobs.
	bad := pushed[0].Layers[0].Digest
	dtrfixture.CorruptBlob(t, c.Client, vol, bad)
	images := filepath.Join(dir, "backup-images.tar")
	res := docker(t, cfg, nil, "dtr", "backup", "images", "-o", images)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "corrupt in the registry (data does not match its digest): "+dtrfixture.BlobPath(bad)))
	assert.Assert(t, is.Contains(res.stderr, "the backup is complete, but 1 blob in the live registry do"))
	_, err := os.Stat(images)
	assert.NilError(t, err, "the backup completes")
	res = docker(t, cfg, nil, "dtr", "backup", "images", "--allow-corrupt-blobs", "-o", images)
	assert.Equal(t, res.code, 0, res.stderr)
	res = docker(t, cfg, nil, "dtr", "backup", "verify", images)
	assert.Equal(t, res.code, 0, "as it was in the registry: %s", res.stdout)
	assert.Assert(t, is.Contains(res.stdout, "Corrupt in the registry  "+dtrfixture.BlobPath(bad)))
	before := dtrfixture.VolumeFiles(t, c.Client, vol)

	// An archive with an entry that leaves the volume: refused before
	// anything is stopped or written.
	evil := filepath.Join(dir, "evil.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: vol + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: vol + "/../../../../etc/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4})
	tw.Write([]byte("evil"))
	tw.Close()
	assert.NilError(t, os.WriteFile(evil, buf.Bytes(), 0o600))
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", evil)
	assert.Equal(t, res.code, 1)
	assert.Assert(t, is.Contains(res.stderr, "refusing to restore "+evil+": it did not verify"))
	assert.Assert(t, is.Contains(res.stderr, "nothing was changed"))
	assertRunning(t, c, registry)
	assert.DeepEqual(t, dtrfixture.VolumeFiles(t, c.Client, vol), before)

	// A restore that fails while writing (a file where the backup has a
	// directory) starts the registry again, and says what state it left.
	dtrfixture.WipeVolume(t, c.Client, vol)
	putFile(t, c, vol, "docker", "in the way")
	res = docker(t, cfg, nil, "dtr", "backup", "restore", "--force", images)
	assert.Equal(t, res.code, 1, res.stdout)
	assert.Assert(t, is.Contains(res.stderr, "restore of "+images+" failed, volume "+vol+" may be partly written (run the restore again with --force)"))
	assert.Assert(t, is.Contains(res.stderr, "started "+registry+" again"))
	assertRunning(t, c, registry)
	assertNoHelpers(t, c)
}

// putFile writes one file into a volume through the archive API.
func putFile(t *testing.T, c *dtrfixture.Cluster, volume, name, content string) {
	ctx := context.Background()
	img := mustImageID(t, c, c.Replicas[0].Containers["rethinkdb"])
	cr, err := c.Client.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{dtrfixture.Label: "fixture"}},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: "/v"}}}, nil, nil, "")
	assert.NilError(t, err)
	defer c.Client.ContainerRemove(ctx, cr.ID, container.RemoveOptions{Force: true})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	assert.NilError(t, c.Client.CopyToContainer(ctx, cr.ID, "/v", &buf, container.CopyToContainerOptions{}))
}
