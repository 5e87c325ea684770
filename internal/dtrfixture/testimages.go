package dtrfixture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/jsonmessage"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// TestImage is an image BuildImages made.
type TestImage struct {
	Repo  string // repository name in a registry: "team/app"
	Tag   string // "1.0"
	Local string // local reference: "dtrfixture/team/app:1.0"
	ID    string // image ID, "sha256:<64 hex>" (the digest of its config)
}

// Blob is a blob of an image as a registry stores it.
type Blob struct {
	MediaType string
	Digest    string // "sha256:<64 hex>": the stored (compressed, for layers) bytes' digest
	Size      int64
}

// Pushed is an image pushed to a registry.
type Pushed struct {
	Repo, Tag string
	Ref       string // RegistryAddr + "/" + Repo + ":" + Tag
	Digest    string // manifest digest
	MediaType string // manifest media type (docker v2 schema2 from Engine 20.10)
	Size      int64  // manifest size in bytes
	Config    Blob
	Layers    []Blob // in manifest order, base first
}

const (
	// BigLayerSize is the size of the pseudo-random (incompressible) file
	// in the big:1 image of BuildImages.
	BigLayerSize = 50 << 20

	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"

	imageTimeout = 5 * time.Minute

	// localPrefix names the images BuildImages makes.
	localPrefix = "dtrfixture/"
)

// emptyAuth is X-Registry-Auth for a registry without auth: the engine
// refuses an empty header.
var emptyAuth = base64.URLEncoding.EncodeToString([]byte("{}"))

// imageSpec is an image BuildImages builds: COPY of files into / of the
// image from (a repo:tag built before it) or scratch.
type imageSpec struct {
	repo  string
	tags  []string
	from  string
	files []genFile
}

// genFile is a generated file: pseudo-random bytes, or text when !random.
type genFile struct {
	name   string
	size   int
	random bool
}

// testImageSpecs: four repositories, six tags (team/app:latest is 1.1
// again), one layer of lib/base:1 shared by all, and BigLayerSize of
// random bytes in big:1.
var testImageSpecs = []imageSpec{
	{repo: "lib/base", tags: []string{"1"}, files: []genFile{
		{name: "etc/dtrfixture-release", size: 200},
		{name: "lib/base.bin", size: 512 << 10, random: true},
	}},
	{repo: "team/app", tags: []string{"1.0"}, from: "lib/base:1", files: []genFile{
		{name: "app/VERSION", size: 16},
		{name: "app/config.json", size: 4 << 10},
		{name: "app/app.bin", size: 256 << 10, random: true},
	}},
	{repo: "team/app", tags: []string{"1.1", "latest"}, from: "lib/base:1", files: []genFile{
		{name: "app/VERSION", size: 16},
		{name: "app/config.json", size: 4 << 10},
		{name: "app/app.bin", size: 256 << 10, random: true},
	}},
	{repo: "team/web", tags: []string{"latest"}, from: "lib/base:1", files: []genFile{
		{name: "srv/www/index.html", size: 8 << 10},
		{name: "srv/www/logo.bin", size: 64 << 10, random: true},
	}},
	{repo: "big", tags: []string{"1"}, from: "lib/base:1", files: []genFile{
		{name: "data/big.bin", size: BigLayerSize, random: true},
	}},
}

// BuildImages builds, with the engine's classic builder, a small set of
// FROM-scratch images whose files are generated from the seed (the same
// seed gives the same files, so the same layers; image IDs differ between
// builds, as configs hold the creation time):
//
//	lib/base:1                     2 files, 512 KiB
//	team/app:1.0                   FROM lib/base:1, 3 files, 260 KiB
//	team/app:1.1, team/app:latest  one image: FROM lib/base:1, other files
//	team/web:latest                FROM lib/base:1, 2 files, 72 KiB
//	big:1                          FROM lib/base:1, BigLayerSize of random bytes
//
// so lib/base:1's layer is shared by every image. They are tagged locally
// as "dtrfixture/<repo>:<tag>" and carry Label (so Teardown removes them;
// so do the images pulled back from a registry). It returns one TestImage
// per tag, in that order, and removes the images (all their tags) on
// cleanup. About 5-10 s on 2 cores.
func BuildImages(t TB, cli *client.Client, seed int64) []TestImage {
	t.Helper()
	var ids []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		slices.Reverse(ids) // children first
		if err := removeImageIDs(ctx, cli, ids); err != nil {
			t.Errorf("dtrfixture: removing test images: %v", err)
		}
	})
	imgs, err := buildImages(cli, seed, testImageSpecs, func(id string) { ids = append(ids, id) })
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	return imgs
}

// buildImages builds the specs in order, calling built with each image ID.
func buildImages(cli *client.Client, seed int64, specs []imageSpec, built func(id string)) ([]TestImage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), imageTimeout)
	defer cancel()
	var out []TestImage
	for _, s := range specs {
		id, err := buildImage(ctx, cli, seed, s)
		if err != nil {
			return out, err
		}
		built(id)
		for _, tag := range s.tags {
			out = append(out, TestImage{Repo: s.repo, Tag: tag, Local: localPrefix + s.repo + ":" + tag, ID: id})
		}
	}
	return out, nil
}

func buildImage(ctx context.Context, cli *client.Client, seed int64, s imageSpec) (string, error) {
	name := s.repo + ":" + s.tags[0]
	// LABEL right after FROM: every image the builder commits carries it,
	// the intermediate ones too, so Teardown finds those after a failure.
	dockerfile := "FROM scratch\n"
	if s.from != "" {
		dockerfile = "FROM " + localPrefix + s.from + "\n"
	}
	dockerfile += "LABEL " + Label + "=" + labelValue + "\nCOPY files/ /\n"
	files := []layerFile{
		{name: "Dockerfile", mode: 0o644, data: []byte(dockerfile)},
		{name: "files/", mode: 0o755},
	}
	dirs := map[string]bool{}
	for _, f := range s.files {
		for d := path.Dir(f.name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range dirs {
			if !yield(d) {
				return
			}
		}
	}) {
		files = append(files, layerFile{name: "files/" + d + "/", mode: 0o755})
	}
	for _, f := range s.files {
		files = append(files, layerFile{name: "files/" + f.name, mode: 0o644, data: generate(seed, name+"/"+f.name, f)})
	}
	buildCtx, err := layerTar(files)
	if err != nil {
		return "", err
	}
	var tags []string
	for _, tag := range s.tags {
		tags = append(tags, localPrefix+s.repo+":"+tag)
	}
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(buildCtx), build.ImageBuildOptions{
		Version:     build.BuilderV1,
		Tags:        tags,
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return "", fmt.Errorf("building %s: %w", name, err)
	}
	defer resp.Body.Close()
	var log bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &log, 0, false, nil); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, log.String())
	}
	ins, err := cli.ImageInspect(ctx, tags[0])
	if err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, log.String())
	}
	return ins.ID, nil
}

// generate makes a file's content from the seed and a key: ChaCha8 bytes,
// or lines of text.
func generate(seed int64, key string, f genFile) []byte {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d/%s", seed, key))
	rng := rand.NewChaCha8(sum)
	if f.random {
		b := make([]byte, f.size)
		rng.Read(b) // never fails
		return b
	}
	var b []byte
	for i := 0; len(b) < f.size; i++ {
		b = fmt.Appendf(b, "%s seed %d line %d %x\n", key, seed, i, rng.Uint64())
	}
	return b[:f.size]
}

// Push tags each image as registryAddr/<repo>:<tag> and pushes it through
// the engine, in order (so lib/base's layer is uploaded once and mounted or
// found for the others), failing the test on an error in the push stream.
// For each it returns the manifest digest the engine reported (the aux
// message of the stream, else the image's RepoDigests), and the config and
// layer blobs of the manifest the registry serves (GET /v2/<repo>/manifests/
// <tag>, Accept docker v2 schema2 and OCI), after checking that manifest's
// digest is the reported one. The pushed tags are removed on cleanup.
func Push(t TB, cli *client.Client, registryAddr string, images []TestImage) []Pushed {
	t.Helper()
	var refs []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := removeRefs(ctx, cli, refs); err != nil {
			t.Errorf("dtrfixture: removing pushed images: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), imageTimeout)
	defer cancel()
	var out []Pushed
	for _, img := range images {
		ref := registryAddr + "/" + img.Repo + ":" + img.Tag
		refs = append(refs, ref)
		p, err := push(ctx, cli, registryAddr, img, ref)
		if err != nil {
			t.Fatalf("dtrfixture: %v", err)
		}
		out = append(out, p)
	}
	return out
}

func push(ctx context.Context, cli *client.Client, registryAddr string, img TestImage, ref string) (Pushed, error) {
	p := Pushed{Repo: img.Repo, Tag: img.Tag, Ref: ref}
	if err := cli.ImageTag(ctx, img.ID, ref); err != nil {
		return p, fmt.Errorf("tagging %s as %s: %w", img.ID, ref, err)
	}
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: emptyAuth})
	if err != nil {
		return p, fmt.Errorf("pushing %s: %w", ref, err)
	}
	defer rc.Close()
	var log []string
	err = readStream(rc, func(m jsonmessage.JSONMessage) {
		if m.Aux != nil {
			var aux struct {
				Tag    string
				Digest string
				Size   int64
			}
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.Tag == img.Tag && aux.Digest != "" {
				p.Digest = aux.Digest
			}
		}
		if m.Status != "" && len(log) < 50 {
			log = append(log, strings.TrimSpace(m.ID+" "+m.Status))
		}
	})
	if err != nil {
		return p, fmt.Errorf("pushing %s: %w (stream: %s)", ref, err, strings.Join(log, "; "))
	}
	if p.Digest == "" { // no aux message: the engine recorded it
		ins, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			return p, fmt.Errorf("pushing %s: %w", ref, err)
		}
		for _, rd := range ins.RepoDigests {
			if name, dgst, ok := strings.Cut(rd, "@"); ok && name == registryAddr+"/"+img.Repo {
				p.Digest = dgst
			}
		}
		if p.Digest == "" {
			return p, fmt.Errorf("pushing %s: no digest in the stream (%s) nor in RepoDigests %v", ref, strings.Join(log, "; "), ins.RepoDigests)
		}
	}
	body, mediaType, err := getManifest(ctx, registryAddr, img.Repo, img.Tag, p.Digest)
	if err != nil {
		return p, err
	}
	var m struct {
		MediaType string
		Config    Blob
		Layers    []Blob
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return p, fmt.Errorf("manifest of %s: %w", ref, err)
	}
	if m.MediaType == "" {
		m.MediaType = mediaType
	}
	if m.MediaType != mediaTypeDockerManifest && m.MediaType != mediaTypeOCIManifest {
		return p, fmt.Errorf("manifest of %s: media type %q is not an image manifest", ref, m.MediaType)
	}
	p.MediaType, p.Size, p.Config, p.Layers = m.MediaType, int64(len(body)), m.Config, m.Layers
	return p, nil
}

// getManifest fetches a manifest from the registry and checks its digest.
func getManifest(ctx context.Context, registryAddr, repo, tag, digest string) ([]byte, string, error) {
	url := "http://" + registryAddr + "/v2/" + repo + "/manifests/" + tag
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", mediaTypeDockerManifest+", "+mediaTypeOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	got := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
	if got != digest || resp.Header.Get("Docker-Content-Digest") != digest {
		return nil, "", fmt.Errorf("GET %s: manifest digest %s (header %q), the push reported %s",
			url, got, resp.Header.Get("Docker-Content-Digest"), digest)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// readStream reads a JSON message stream to its end and returns the first
// error message in it.
func readStream(r io.Reader, f func(jsonmessage.JSONMessage)) error {
	dec := json.NewDecoder(r)
	var firstErr error
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err == io.EOF {
			return firstErr
		} else if err != nil {
			return errors.Join(firstErr, err)
		}
		if m.Error != nil && firstErr == nil {
			firstErr = m.Error
		} else if m.ErrorMessage != "" && firstErr == nil {
			firstErr = errors.New(m.ErrorMessage)
		}
		f(m)
	}
}

// removeRefs removes the images the references name, with all their tags.
func removeRefs(ctx context.Context, cli *client.Client, refs []string) error {
	var ids []string
	var errs []error
	for _, ref := range refs {
		ins, err := cli.ImageInspect(ctx, ref)
		switch {
		case err == nil:
			ids = append(ids, ins.ID)
		case !errdefs.IsNotFound(err):
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, removeImageIDs(ctx, cli, ids))...)
}

// PullAndCompare removes the local images of the pushed references (with
// all their tags, the BuildImages ones too: force, untagged parents
// pruned), pulls each registryAddr/<repo>:<tag> back through the engine and
// checks that the pulled manifest digest (the pull stream's, and the image's
// RepoDigests) is the pushed one and the image ID its config digest. The
// pulled images carry Label and are removed on cleanup.
func PullAndCompare(t TB, cli *client.Client, registryAddr string, pushed []Pushed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), imageTimeout)
	defer cancel()
	var refs []string
	for _, p := range pushed {
		refs = append(refs, registryAddr+"/"+p.Repo+":"+p.Tag)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := removeRefs(ctx, cli, refs); err != nil {
			t.Errorf("dtrfixture: removing pulled images: %v", err)
		}
	})
	if err := removeRefs(ctx, cli, refs); err != nil {
		t.Fatalf("dtrfixture: removing local images before pulling: %v", err)
	}
	for _, ref := range refs {
		if _, err := cli.ImageInspect(ctx, ref); !errdefs.IsNotFound(err) {
			t.Fatalf("dtrfixture: %s is still there after its removal (%v)", ref, err)
		}
	}
	for i, p := range pushed {
		ref := refs[i]
		rc, err := cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: emptyAuth})
		if err != nil {
			t.Fatalf("dtrfixture: pulling %s: %v", ref, err)
		}
		var streamDigest string
		var log []string
		err = readStream(rc, func(m jsonmessage.JSONMessage) {
			if d, ok := strings.CutPrefix(m.Status, "Digest: "); ok {
				streamDigest = d
			}
			if m.Status != "" && len(log) < 50 {
				log = append(log, strings.TrimSpace(m.ID+" "+m.Status))
			}
		})
		rc.Close()
		if err != nil {
			t.Fatalf("dtrfixture: pulling %s: %v (stream: %s)", ref, err, strings.Join(log, "; "))
		}
		if streamDigest != p.Digest {
			t.Errorf("dtrfixture: pulled %s with digest %q, pushed %s (stream: %s)", ref, streamDigest, p.Digest, strings.Join(log, "; "))
		}
		ins, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatalf("dtrfixture: pulled %s: %v", ref, err)
		}
		if want := registryAddr + "/" + p.Repo + "@" + p.Digest; !slices.Contains(ins.RepoDigests, want) {
			t.Errorf("dtrfixture: pulled %s: RepoDigests %v, want %s", ref, ins.RepoDigests, want)
		}
		if ins.ID != p.Config.Digest {
			t.Errorf("dtrfixture: pulled %s: image ID %s, pushed config %s", ref, ins.ID, p.Config.Digest)
		}
	}
}

// SeedRegistryMetadata writes DTR-shaped tags, manifests and blobs
// documents in dtr2 that reference what was pushed, as DTR's API would,
// so that a metadata backup and an image backup of the cluster agree
// (backup verify --metadata).
func SeedRegistryMetadata(t TB, driver *r.Session, pushed []Pushed) {
	t.Helper()
	if err := r.DBCreate("dtr2").Exec(driver); err != nil {
		t.Fatalf("dtrfixture: creating dtr2: %v", err)
	}
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
		for _, b := range append([]Blob{p.Config}, p.Layers...) {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				blobs = append(blobs, map[string]any{"id": b.Digest, "size": b.Size})
			}
		}
	}
	for _, name := range []string{"tags", "manifests", "blobs"} {
		docs := map[string][]any{"tags": tags, "manifests": manifests, "blobs": blobs}[name]
		if err := r.DB("dtr2").TableCreate(name).Exec(driver); err != nil {
			t.Fatalf("dtrfixture: creating dtr2.%s: %v", name, err)
		}
		if err := r.DB("dtr2").Table(name).Insert(docs).Exec(driver); err != nil {
			t.Fatalf("dtrfixture: writing dtr2.%s: %v", name, err)
		}
	}
}
