package dtrfixture

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/errdefs"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestRegistry: a replica whose dtr-registry runs the real registry; images
// pushed to it land in DTR's layout in the volume; a corrupted blob is
// served corrupted; a wiped volume is empty; pushed again, the images pull
// back with the same digests.
func TestRegistry(t *testing.T) {
	cli, err := engine()
	if err != nil && !inCI() {
		t.Skip(err)
	}
	var registryAddr string
	t.Run("push corrupt wipe pull", func(t *testing.T) {
		began := time.Now()
		c := Start(t, Options{Replicas: 1, Components: []string{"registry"}, Registry: true})
		startTook := time.Since(began)
		rep := c.Replicas[0]
		registryAddr = rep.RegistryAddr
		vol := "dtr-registry-" + rep.ID
		ctx := context.Background()

		checkRegistryContainer(t, c, rep)

		t0 := time.Now()
		imgs := BuildImages(t, c.Client, 1)
		buildTook := time.Since(t0)
		var refs []string
		for _, img := range imgs {
			refs = append(refs, img.Repo+":"+img.Tag)
		}
		assert.DeepEqual(t, refs, []string{"lib/base:1", "team/app:1.0", "team/app:1.1", "team/app:latest", "team/web:latest", "big:1"})
		assert.Equal(t, imgs[2].ID, imgs[3].ID) // team/app:latest is 1.1

		t0 = time.Now()
		pushed := Push(t, c.Client, rep.RegistryAddr, imgs)
		pushTook := time.Since(t0)
		assert.Equal(t, len(pushed), len(imgs))
		assert.Equal(t, pushed[2].Digest, pushed[3].Digest)

		// Every image shares lib/base's layer; big:1's layer stays large
		// (random bytes do not compress).
		base := pushed[0].Layers[0]
		for _, p := range pushed {
			assert.Equal(t, p.MediaType, mediaTypeDockerManifest, p.Ref)
			assert.Equal(t, p.Layers[0], base, p.Ref)
			assert.Equal(t, p.Config.Digest, imgs[slices.IndexFunc(imgs, func(i TestImage) bool { return i.Repo == p.Repo && i.Tag == p.Tag })].ID, p.Ref)
		}
		bigLayer := pushed[5].Layers[len(pushed[5].Layers)-1]
		assert.Assert(t, bigLayer.Size >= BigLayerSize, "%d", bigLayer.Size)

		// DTR's layout in the volume: each blob (layers, configs and the
		// manifests themselves) at its content address, and links per
		// repository.
		files := VolumeFiles(t, c.Client, vol)
		blobs := map[string]int64{} // digest -> size of what was pushed
		for _, p := range pushed {
			repo := "docker/registry/v2/repositories/" + p.Repo + "/"
			for _, b := range append([]Blob{p.Config}, p.Layers...) {
				blobs[b.Digest] = b.Size
				assert.Check(t, is.Equal(files[BlobPath(b.Digest)], hexOf(b.Digest)), "%s: blob %s", p.Ref, b.Digest)
				assert.Check(t, hasKey(files, repo+"_layers/sha256/"+hexOf(b.Digest)+"/link"), "%s: layer link of %s", p.Ref, b.Digest)
			}
			blobs[p.Digest] = p.Size
			assert.Check(t, is.Equal(files[BlobPath(p.Digest)], hexOf(p.Digest)), "%s: manifest blob", p.Ref)
			assert.Check(t, hasKey(files, repo+"_manifests/revisions/sha256/"+hexOf(p.Digest)+"/link"), p.Ref)
			assert.Check(t, hasKey(files, repo+"_manifests/tags/"+p.Tag+"/current/link"), p.Ref)
			assert.Check(t, hasKey(files, repo+"_manifests/tags/"+p.Tag+"/index/sha256/"+hexOf(p.Digest)+"/link"), p.Ref)
		}
		var total int64
		for path, sum := range files {
			assert.Check(t, strings.HasPrefix(path, "docker/registry/v2/blobs/sha256/") || strings.HasPrefix(path, "docker/registry/v2/repositories/"), path)
			if d, ok := blobDigest(path); ok {
				assert.Check(t, is.Equal(sum, hexOf(d)), path)
				size, known := blobs[d]
				assert.Check(t, known, "unexpected blob %s", path)
				total += size
			}
		}
		assert.Equal(t, len(blobs), countBlobs(files))
		for path := range files {
			if strings.Contains(path, "/_uploads/") {
				t.Logf("left in _uploads: %s", path)
			}
		}
		t.Logf("pushed %d tags of %d repositories: %d blobs, %.1f MiB in the volume (%d files)",
			len(pushed), len(slices.Compact(slices.Sorted(func(yield func(string) bool) {
				for _, p := range pushed {
					if !yield(p.Repo) {
						return
					}
				}
			}))), len(blobs), float64(total)/(1<<20), len(files))

		// The registry keeps its volume across a restart, on the same address.
		addr := rep.RegistryAddr
		c.Stop(t, rep.ID, "registry")
		assert.Equal(t, state(t, c, rep.Containers["registry"]).Status, "exited")
		c.Start(t, rep.ID, "registry")
		assert.Equal(t, rep.RegistryAddr, addr)
		_, _, err := getManifest(ctx, rep.RegistryAddr, "big", "1", pushed[5].Digest)
		assert.NilError(t, err)

		// A corrupted blob is served as it is on disk.
		victim := pushed[1].Layers[len(pushed[1].Layers)-1] // team/app:1.0's own layer
		CorruptBlob(t, c.Client, vol, victim.Digest)
		corrupted := VolumeFiles(t, c.Client, vol)
		assert.Assert(t, corrupted[BlobPath(victim.Digest)] != hexOf(victim.Digest))
		want := maps.Clone(files)
		want[BlobPath(victim.Digest)] = corrupted[BlobPath(victim.Digest)]
		assert.DeepEqual(t, corrupted, want)
		status, body := get(t, "http://"+rep.RegistryAddr+"/v2/team/app/blobs/"+victim.Digest)
		if status == http.StatusOK {
			assert.Equal(t, int64(len(body)), victim.Size)
			assert.Assert(t, fmt.Sprintf("sha256:%x", sha256.Sum256(body)) != victim.Digest, "the registry served the original content")
			t.Logf("the registry serves the corrupted blob %s with 200 and the corrupted bytes", victim.Digest)
		} else {
			t.Logf("the registry answers %d for the corrupted blob %s", status, victim.Digest)
		}

		// A wiped volume is empty; the registry then knows nothing.
		WipeVolume(t, c.Client, vol)
		assert.Check(t, is.Len(VolumeFiles(t, c.Client, vol), 0))
		status, _ = get(t, "http://"+rep.RegistryAddr+"/v2/team/app/manifests/1.0")
		assert.Equal(t, status, http.StatusNotFound)
		_, err = c.Client.VolumeInspect(ctx, vol)
		assert.NilError(t, err)

		// Pushed again, everything pulls back with the same digests.
		t0 = time.Now()
		repushed := Push(t, c.Client, rep.RegistryAddr, imgs)
		repushTook := time.Since(t0)
		for i := range pushed {
			assert.Check(t, is.DeepEqual(repushed[i], pushed[i]), pushed[i].Ref)
		}
		t0 = time.Now()
		PullAndCompare(t, c.Client, rep.RegistryAddr, repushed)
		pullTook := time.Since(t0)
		for _, img := range imgs {
			_, err := c.Client.ImageInspect(ctx, img.Local)
			assert.Check(t, err != nil, "%s is still there", img.Local)
		}
		t.Logf("timings: start %s, build %s, push %s, push again %s, pull %s, all %s",
			startTook.Round(time.Millisecond), buildTook.Round(time.Millisecond), pushTook.Round(time.Millisecond),
			repushTook.Round(time.Millisecond), pullTook.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	})

	// The subtest's cleanup has run: nothing of it is left but the
	// fixture's component images.
	assert.NilError(t, err)
	assertNothingLabelled(t, cli)
	ctx := context.Background()
	imgs, err := cli.ImageList(ctx, image.ListOptions{All: true})
	assert.NilError(t, err)
	for _, img := range imgs {
		for _, tag := range img.RepoTags {
			assert.Check(t, !strings.HasPrefix(tag, localPrefix+"team/") && (registryAddr == "" || !strings.HasPrefix(tag, registryAddr+"/")), tag)
		}
	}
}

// TestRemoveImages: Teardown's image removal takes images with children
// (the classic builder's parents, which not even force removes first) and
// images tagged for a registry on 127.0.0.1.
func TestRemoveImages(t *testing.T) {
	cli, err := engine()
	if err != nil {
		if inCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	lockEngine()
	ctx := context.Background()
	specs := []imageSpec{
		{repo: "x/base", tags: []string{"1"}, files: []genFile{{name: "a", size: 100, random: true}}},
		{repo: "x/child", tags: []string{"1", "2"}, from: "x/base:1", files: []genFile{{name: "b", size: 100}}},
		{repo: "x/grandchild", tags: []string{"1"}, from: "x/child:1", files: []genFile{{name: "c", size: 100}}},
	}
	var ids []string
	t.Cleanup(func() { removeImageIDs(context.Background(), cli, ids) }) // if the test fails
	imgs, err := buildImages(cli, 2, specs, func(id string) { ids = append(ids, id) })
	assert.NilError(t, err)
	for _, img := range imgs {
		assert.NilError(t, cli.ImageTag(ctx, img.ID, "127.0.0.1:5000/"+img.Repo+":"+img.Tag))
	}
	all, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: labelFilter()})
	assert.NilError(t, err)
	assert.Assert(t, len(all) > len(ids), "the builder's intermediate images carry the label too: %d images", len(all))
	// The real RethinkDB's image under a per-version name, as Start makes it.
	var rethinkImage string
	if _, err := rethinkserver.Find(); err == nil {
		_, err := ensureRethinkImage(ctx, cli, "0.0.1")
		assert.NilError(t, err)
		rethinkImage = images.rethink
	}

	assert.NilError(t, removeImages(ctx, cli))
	assert.NilError(t, untagRethinkImages(ctx, cli))
	clearImages() // the fixture's own images went too
	if rethinkImage != "" {
		_, err := cli.ImageInspect(ctx, rethinkImage)
		assert.NilError(t, err, "the imported RethinkDB image is kept")
		_, err = cli.ImageInspect(ctx, imageName("rethinkdb", "0.0.1"))
		assert.Check(t, errdefs.IsNotFound(err), "the per-version name is removed: %v", err)
	}
	all, err = cli.ImageList(ctx, image.ListOptions{All: true, Filters: labelFilter()})
	assert.NilError(t, err)
	assert.Check(t, is.Len(all, 0))
	all, err = cli.ImageList(ctx, image.ListOptions{All: true})
	assert.NilError(t, err)
	for _, img := range all {
		for _, tag := range img.RepoTags {
			assert.Check(t, !strings.HasPrefix(tag, "127.0.0.1:5000/x/") && !strings.HasPrefix(tag, localPrefix+"x/"), tag)
		}
	}
}

func checkRegistryContainer(t *testing.T, c *Cluster, rep *Replica) {
	t.Helper()
	ci, err := c.Client.ContainerInspect(context.Background(), rep.Containers["registry"])
	assert.NilError(t, err)
	assert.Equal(t, ci.Name, "/dtr-registry-"+rep.ID)
	assert.Equal(t, ci.Config.Image, "dtrfixture/dtr-registry:"+DefaultVersion)
	assert.DeepEqual(t, []string(ci.Config.Entrypoint), []string{"/registry"})
	assert.DeepEqual(t, []string(ci.Config.Cmd), []string{"serve", "/etc/distribution/config.yml"})
	assert.Equal(t, ci.Config.Labels[Label], "fixture")
	assert.Equal(t, ci.Config.Labels["com.docker.compose.project"], "Docker Trusted Registry "+DefaultVersion+" - (Replica "+rep.ID+")")
	assert.Equal(t, ci.Config.Labels["com.docker.compose.service"], "registry")
	assert.Assert(t, slices.Contains(ci.Config.Env, "DTR_VERSION="+DefaultVersion), "%v", ci.Config.Env)
	mounts := map[string]string{}
	for _, m := range ci.Mounts {
		mounts[m.Destination] = m.Name
	}
	assert.DeepEqual(t, mounts, map[string]string{"/ca": "dtr-ca-" + rep.ID, "/storage": "dtr-registry-" + rep.ID})
	bindings := ci.NetworkSettings.Ports["5000/tcp"]
	assert.Equal(t, len(bindings), 1)
	assert.Equal(t, "127.0.0.1:"+bindings[0].HostPort, rep.RegistryAddr)
	assert.Assert(t, rep.RegistryAddr != rep.RethinkAddr)
	assert.Assert(t, ci.NetworkSettings.Networks["dtr-ol"] != nil)
	status, body := get(t, "http://"+rep.RegistryAddr+"/v2/")
	assert.Equal(t, status, http.StatusOK, string(body))
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	assert.NilError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	assert.NilError(t, err)
	return resp.StatusCode, body
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// blobDigest returns the digest of a blob's data file path.
func blobDigest(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "docker/registry/v2/blobs/sha256/")
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "data" || !strings.HasPrefix(parts[1], parts[0]) {
		return "", false
	}
	return "sha256:" + parts[1], true
}

func countBlobs(files map[string]string) int {
	n := 0
	for path := range files {
		if _, ok := blobDigest(path); ok {
			n++
		}
	}
	return n
}
