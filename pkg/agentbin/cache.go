package agentbin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// The agent cache: a small named volume on each node that holds the agent
// binary, named after its SHA-256, so that a helper runs the agent from it
// instead of having 30 MB copied in on every run. The engine makes the
// volume on the node where the helper lands, as the helper's mount names
// it (through UCP too: no node-targeted volume create). The first run on
// a node fills it through a never-started container whose name is the
// fill's lock; the binary, then a marker named after the digest, so that
// a marker means a whole binary.

const (
	// CacheDir is where a helper mounts its node's cache volume.
	CacheDir = "/docker-dtr-agent.d"
	// cachedAgent is the agent in it: the helper's entrypoint.
	cachedAgent = CacheDir + "/docker-dtr-agent"

	// LabelDigest, on a cache volume, is the full SHA-256 of the agent it
	// holds; LabelArch the node's architecture, which the agent is for.
	LabelDigest = "com.docker-dtr.agent"
	LabelArch   = "com.docker-dtr.agent.arch"

	volumePrefix = "docker-dtr-agent-"
	fillPrefix   = "docker-dtr-agent-fill-"
)

// VolumeName is the cache volume of the agent with that digest.
func VolumeName(digest string) string { return volumePrefix + digest[:16] }

// marker is the file, in the volume, that says the agent is whole.
func marker(digest string) string { return "sha256-" + digest }

// digests are the binaries this process hashed, by path.
var digests struct {
	sync.Mutex
	m map[string]hashed
}

type hashed struct {
	size int64
	mod  time.Time
	sum  string
}

// Digest is the hex SHA-256 of the binary at path, hashed once per
// process while the file keeps its size and time.
func Digest(path string) (string, error) {
	digests.Lock()
	defer digests.Unlock()
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if h, ok := digests.m[path]; ok && h.size == st.Size() && h.mod.Equal(st.ModTime()) {
		return h.sum, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if digests.m == nil {
		digests.m = map[string]hashed{}
	}
	digests.m[path] = hashed{st.Size(), st.ModTime(), sum}
	return sum, nil
}

// Warm hashes the agent (--agent-binary's, or this plugin's) in the
// background, so that the helper made after finding the DTR does not
// wait for it.
func Warm(flag string) {
	if p, _, err := Find(flag); err == nil {
		go Digest(p)
	}
}

// Helper is a helper container to create with the agent as entrypoint.
type Helper struct {
	Name string
	// Config's entrypoint is Path (the agent copied in); Host holds the
	// helper's own mounts.
	Config *container.Config
	Host   *container.HostConfig
	// Binary is the agent, checked against Arch, the node's.
	Binary, Arch string
	// Node is the node's name (the fill's lock); "" where it is unknown.
	Node string
}

// Source says where a created helper's agent comes from.
type Source string

const (
	Cached Source = "cached" // the node's cache volume held it
	Filled Source = "filled" // this run filled the node's cache volume
	Copied Source = "copied" // copied into the container: the cache could not be used
)

// Describe says it for a log line.
func (s Source) Describe() string {
	switch s {
	case Cached:
		return "its agent from the node's cache"
	case Filled:
		return "its agent put in the node's cache"
	}
	return "its agent copied in"
}

// Create creates the helper, not started, running the agent from its
// node's cache volume, which it fills on a miss. Where the cache cannot
// be used (the engine refuses the mount, the marker cannot be read,
// another run is filling the same node's cache, the fill fails), the
// agent is copied into the helper as before.
func Create(ctx context.Context, api client.APIClient, h Helper) (id string, src Source, err error) {
	digest, err := Digest(h.Binary)
	if err != nil {
		return "", "", fmt.Errorf("reading the agent %s: %w", h.Binary, err)
	}
	cfg, host := withCache(h.Config, h.Host, digest, h.Arch)
	created, err := api.ContainerCreate(ctx, cfg, host, nil, nil, h.Name)
	if err != nil {
		if ctx.Err() != nil {
			return "", "", err
		}
		return copied(ctx, api, h)
	}
	_, err = api.ContainerStatPath(ctx, created.ID, path.Join(CacheDir, marker(digest)))
	if err == nil {
		return created.ID, Cached, nil
	}
	if errdefs.IsNotFound(err) && fill(ctx, api, h, digest) == nil {
		RemoveOld(ctx, api, digest, h.Arch)
		return created.ID, Filled, nil
	}
	remove(api, created.ID)
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	return copied(ctx, api, h)
}

// withCache is the helper with the agent from the cache volume, mounted
// read-only: a hit needs nothing else, and a miss fills the volume
// through another container, so the helper is never made twice.
func withCache(cfg *container.Config, host *container.HostConfig, digest, arch string) (*container.Config, *container.HostConfig) {
	c, hc := *cfg, *host
	c.Entrypoint = append([]string{cachedAgent}, cfg.Entrypoint[1:]...)
	hc.Mounts = append(slices.Clone(host.Mounts), cacheMount(digest, arch, true))
	return &c, &hc
}

func cacheMount(digest, arch string, readOnly bool) mount.Mount {
	return mount.Mount{
		Type: mount.TypeVolume, Source: VolumeName(digest), Target: CacheDir, ReadOnly: readOnly,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true, Labels: map[string]string{LabelDigest: digest, LabelArch: arch}},
	}
}

// copied creates the helper as it is, and copies the agent in.
func copied(ctx context.Context, api client.APIClient, h Helper) (string, Source, error) {
	created, err := api.ContainerCreate(ctx, h.Config, h.Host, nil, nil, h.Name)
	if err != nil {
		return "", "", err
	}
	if err := Copy(ctx, api, created.ID, h.Binary); err != nil {
		remove(api, created.ID)
		return "", "", fmt.Errorf("copying the agent into helper %s: %w", h.Name, err)
	}
	return created.ID, Copied, nil
}

// fill puts the agent and its marker into the cache volume, through a
// container that is never started: from the helper's image, on its node,
// the volume read-write. Its name, one per node and agent, is the lock: a
// second run that finds it taken copies its agent in instead of writing
// the same file at the same time (the archive API replaces a file by
// unlink and create, so the loser's marker could land beside the winner's
// half-written binary). One that a killed run left is removed as stale
// (pkg/helpercontainer) and the next run fills again: the marker comes
// last, so a killed fill is a miss.
func fill(ctx context.Context, api client.APIClient, h Helper, digest string) error {
	cfg := &container.Config{
		Image:      h.Config.Image,
		Entrypoint: []string{"/docker-dtr-never-started"},
		Labels:     helpercontainer.Labels(helpercontainer.KindAgentFill, h.Node),
	}
	for _, e := range h.Config.Env {
		if strings.HasPrefix(e, "constraint:") {
			cfg.Env = append(cfg.Env, e)
		}
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		LogConfig:   container.LogConfig{Type: "none"},
		Mounts:      []mount.Mount{cacheMount(digest, h.Arch, false)},
	}
	// The image's volumes, which the helper makes tmpfs: no anonymous volume.
	for _, m := range h.Host.Mounts {
		if m.Type == mount.TypeTmpfs {
			host.Mounts = append(host.Mounts, m)
		}
	}
	created, err := api.ContainerCreate(ctx, cfg, host, nil, nil, fillName(digest, h.Node))
	if err != nil {
		return err
	}
	defer remove(api, created.ID)
	return send(ctx, api, created.ID, CacheDir, path.Base(cachedAgent), h.Binary, digest)
}

// fillName is the fill's lock: one per node (container names are
// cluster-wide through UCP) and agent.
func fillName(digest, node string) string {
	name := fillPrefix + digest[:16]
	if node == "" {
		return name
	}
	return name + "-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, node)
}

// RemoveOld removes the cache volumes of other agents for arch (older
// plugins), as far as it can: the engine refuses those in use, which go
// another time. The newest of them is kept: two plugins used in turn on
// one cluster (two operators' versions, or a benchmark's two builds)
// would otherwise remove each other's on every run, and every run would
// copy its agent in again. Through UCP it lists, and removes, every
// node's.
func RemoveOld(ctx context.Context, api client.APIClient, digest, arch string) {
	list, err := api.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelDigest))})
	if err != nil {
		return
	}
	for _, name := range oldCaches(list.Volumes, digest, arch) {
		api.VolumeRemove(ctx, name, false)
	}
}

// oldCaches are the cache volumes RemoveOld removes: those of other
// agents for arch, but the newest (by creation time; through UCP, the
// newest on each node, which names its volumes "node/name").
func oldCaches(vols []*volume.Volume, digest, arch string) []string {
	newest := map[string]*volume.Volume{} // by node
	var others []*volume.Volume
	for _, v := range vols {
		if v.Labels[LabelDigest] == digest || v.Labels[LabelArch] != arch {
			continue
		}
		others = append(others, v)
		node := nodeOf(v.Name)
		if n := newest[node]; n == nil || created(v).After(created(n)) {
			newest[node] = v
		}
	}
	var old []string
	for _, v := range others {
		if newest[nodeOf(v.Name)] != v {
			old = append(old, v.Name)
		}
	}
	return old
}

// remove deletes a container this package made, after Ctrl-C too.
func remove(api client.APIClient, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	helpercontainer.Remove(ctx, api, id)
}

// created is when the engine made the volume (zero if it does not say).
func created(v *volume.Volume) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, v.CreatedAt)
	return t
}

// nodeOf is the node a volume's name gives through UCP ("node/name"), or
// "" on a plain engine.
func nodeOf(name string) string {
	node, _, found := strings.Cut(name, "/")
	if !found {
		return ""
	}
	return node
}
