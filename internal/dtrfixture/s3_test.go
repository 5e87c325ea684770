package dtrfixture

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestS3Registry: a replica's real registry switched to the s3 driver in
// front of the fixture's S3 server stores pushed images in the bucket under
// the root, and nothing in its volume; it keeps the configuration across a
// restart; while the server is stopped, the registry fails, and once it is
// started again, images pull back; a wiped bucket leaves nothing to pull.
// Afterwards nothing labelled is left, and the server's image stays.
func TestS3Registry(t *testing.T) {
	cli, err := engine()
	if err != nil && !inCI() {
		t.Skip(err)
	}
	t.Run("push to S3 wipe", func(t *testing.T) {
		began := time.Now()
		c := Start(t, Options{Replicas: 1, Components: []string{"registry"}, Registry: true})
		clusterTook := time.Since(began)
		rep := c.Replicas[0]
		vol := "dtr-registry-" + rep.ID
		ctx := context.Background()

		t0 := time.Now()
		s3 := StartS3(t, c)
		startS3Took := time.Since(t0)
		checkS3Container(t, c, s3)

		// A helper in the registry's network namespace, as the plugin's
		// are, reaches the server by its alias.
		code, out := dialFrom(t, c, "container:"+rep.Containers["registry"], S3Alias+":"+S3Port)
		assert.Check(t, is.Equal(code, 0), out)

		const root = "dtr"
		t0 = time.Now()
		c.UseS3(t, s3, root)
		useTook := time.Since(t0)
		checkRegistryContainer(t, c, rep) // same container, volume still at /storage
		assert.Check(t, is.Len(s3.Keys(t), 0))

		// All of them (PullAndCompare removes the local images, which a
		// parent of an image left out would keep), big:1 too: the registry
		// uploads its layer in parts and copies it in parts (above 32 MiB).
		imgs := BuildImages(t, cli, 3)
		assert.Equal(t, imgs[5].Repo, "big")
		t0 = time.Now()
		pushed := Push(t, cli, rep.RegistryAddr, imgs)
		pushTook := time.Since(t0)

		// DTR's layout, in the bucket under the root.
		keys := s3.Keys(t)
		blobs := map[string]bool{}
		for _, p := range pushed {
			repo := root + "/docker/registry/v2/repositories/" + p.Repo + "/"
			for _, b := range append([]Blob{p.Config}, p.Layers...) {
				blobs[b.Digest] = true
				assert.Check(t, slices.Contains(keys, root+"/"+BlobPath(b.Digest)), "%s: blob %s", p.Ref, b.Digest)
				assert.Check(t, slices.Contains(keys, repo+"_layers/sha256/"+hexOf(b.Digest)+"/link"), "%s: layer link of %s", p.Ref, b.Digest)
			}
			blobs[p.Digest] = true
			assert.Check(t, slices.Contains(keys, root+"/"+BlobPath(p.Digest)), "%s: manifest blob", p.Ref)
			assert.Check(t, slices.Contains(keys, repo+"_manifests/tags/"+p.Tag+"/current/link"), p.Ref)
		}
		nblobs := 0
		for _, k := range keys {
			assert.Check(t, strings.HasPrefix(k, root+"/docker/registry/v2/blobs/sha256/") || strings.HasPrefix(k, root+"/docker/registry/v2/repositories/"), k)
			if d, ok := blobDigest(strings.TrimPrefix(k, root+"/")); ok {
				nblobs++
				assert.Check(t, blobs[d], "unexpected blob %s", k)
			}
		}
		assert.Check(t, is.Equal(nblobs, len(blobs)))
		t.Logf("pushed %d tags: %d blobs, %d objects in the bucket", len(pushed), len(blobs), len(keys))
		// Nothing in the volume, mounted all the same.
		assert.Check(t, is.Len(VolumeFiles(t, cli, vol), 0))

		// The configuration stays across a restart.
		c.Stop(t, rep.ID, "registry")
		c.Start(t, rep.ID, "registry")
		_, _, err := getManifest(ctx, rep.RegistryAddr, pushed[1].Repo, pushed[1].Tag, pushed[1].Digest)
		assert.NilError(t, err)

		t0 = time.Now()
		PullAndCompare(t, cli, rep.RegistryAddr, pushed)
		pullTook := time.Since(t0)

		// A wiped bucket: the registry knows nothing, a pull fails.
		s3.Wipe(t)
		assert.Check(t, is.Len(s3.Keys(t), 0))
		status, body := get(t, "http://"+rep.RegistryAddr+"/v2/team/app/manifests/1.0")
		assert.Check(t, is.Equal(status, http.StatusNotFound), string(body))
		ref := pushed[1].Ref
		assert.NilError(t, removeRefs(ctx, cli, []string{ref}))
		rc, err := cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: emptyAuth})
		if err == nil {
			err = readStream(rc, func(jsonmessage.JSONMessage) {})
			rc.Close()
		}
		assert.Check(t, err != nil, "pulled %s from a wiped bucket", ref)
		t.Logf("pulling %s after the wipe: %v", ref, err)

		t.Logf("timings: cluster %s, StartS3 %s, UseS3 %s, push %s, pull %s, all %s",
			clusterTook.Round(time.Millisecond), startS3Took.Round(time.Millisecond), useTook.Round(time.Millisecond),
			pushTook.Round(time.Millisecond), pullTook.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	})

	// The subtest's cleanup has run: the S3 server went with the cluster;
	// its image stays, and Teardown's image removal (label Label) leaves it.
	assert.NilError(t, err)
	assertNothingLabelled(t, cli)
	ins, err := cli.ImageInspect(context.Background(), SeaweedImage)
	assert.NilError(t, err)
	assert.Equal(t, ins.Config.Labels[SeaweedImageLabel], seaweedVersion)
	_, labelled := ins.Config.Labels[Label]
	assert.Check(t, !labelled)
}

func checkS3Container(t *testing.T, c *Cluster, s3 *S3) {
	t.Helper()
	ci, err := c.Client.ContainerInspect(context.Background(), s3.Container)
	assert.NilError(t, err)
	assert.Equal(t, ci.Config.Image, SeaweedImage)
	assert.Equal(t, ci.Config.Labels[Label], "fixture")
	assert.Equal(t, s3.Endpoint, "http://dtr-s3:8333")
	assert.Equal(t, s3.Region, "us-east-1")
	ep := ci.NetworkSettings.Networks[c.Network]
	assert.Assert(t, ep != nil)
	assert.Check(t, slices.Contains(ep.Aliases, S3Alias), "%v", ep.Aliases)
	bindings := ci.NetworkSettings.Ports[S3Port+"/tcp"]
	assert.Equal(t, len(bindings), 1)
	assert.Equal(t, "http://127.0.0.1:"+bindings[0].HostPort, s3.HostEndpoint)
	// The credentials are in the identities file, not on the command line.
	args := strings.Join(append(ci.Config.Entrypoint, ci.Config.Cmd...), " ")
	assert.Check(t, !strings.Contains(args, s3.SecretKey) && !strings.Contains(args, s3.AccessKey), args)
	for _, e := range ci.Config.Env {
		assert.Check(t, !strings.Contains(e, s3.SecretKey), e)
	}
	// Without the credentials, the bucket is closed.
	resp, err := http.Get(s3.HostEndpoint + "/" + s3.Bucket + "?list-type=2")
	assert.NilError(t, err)
	resp.Body.Close()
	assert.Check(t, is.Equal(resp.StatusCode, http.StatusForbidden))
	// Nor do other credentials open it.
	other := *s3
	other.SecretKey = strings.Repeat("0", len(s3.SecretKey))
	err = other.do(context.Background(), http.MethodGet, "/"+s3.Bucket, url.Values{"list-type": {"2"}}, nil, nil)
	assert.Check(t, err != nil)
}

// dialFrom runs `dtrfake dial addrs...` in a helper container with the
// network mode and returns its exit code and output.
func dialFrom(t *testing.T, c *Cluster, networkMode string, addrs ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := ensureHelperImage(ctx, c.Client)
	assert.NilError(t, err)
	resp, err := c.Client.ContainerCreate(ctx,
		&container.Config{Image: img, Cmd: append([]string{"dial"}, addrs...), Labels: labels()},
		&container.HostConfig{NetworkMode: container.NetworkMode(networkMode)}, nil, nil, "")
	assert.NilError(t, err)
	defer removeContainer(context.Background(), c.Client, resp.ID)
	waitC, errC := c.Client.ContainerWait(ctx, resp.ID, container.WaitConditionNextExit)
	assert.NilError(t, c.Client.ContainerStart(ctx, resp.ID, container.StartOptions{}))
	var code int
	select {
	case w := <-waitC:
		code = int(w.StatusCode)
	case err := <-errC:
		t.Fatal(err)
	}
	return code, containerLogs(ctx, c.Client, resp.ID)
}

// TestS3SigV4: the signature of AWS's documented example (GET Bucket,
// "Signature Calculations for the Authorization Header", S3 API reference).
func TestS3SigV4(t *testing.T) {
	q := url.Values{"max-keys": {"2"}, "prefix": {"J"}}
	assert.Equal(t, canonicalQuery(q), "max-keys=2&prefix=J")
	got := signV4(http.MethodGet, "examplebucket.s3.amazonaws.com", "/", canonicalQuery(q), sha256Hex(nil),
		"20130524T000000Z", "us-east-1", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	assert.Equal(t, got, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "+
		"SignedHeaders=host;x-amz-content-sha256;x-amz-date, "+
		"Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
	assert.Equal(t, awsEscape("/b/a b+c~:d", false), "/b/a%20b%2Bc~%3Ad")
	assert.Equal(t, awsEscape("a/b=", true), "a%2Fb%3D")
	assert.Equal(t, SeaweedImage, "dtrfixture/seaweedfs:"+strings.TrimPrefix(seaweedVersion, "v0.0.0-"))
}
