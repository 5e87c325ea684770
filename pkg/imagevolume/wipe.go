package imagevolume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

// agentJob is one run of the agent in a helper container, with the words
// its messages use.
type agentJob struct {
	prefix   string   // of the helper's name
	args     []string // the agent's, after "agent"
	readOnly bool     // the volume's mount
	verb     string   // "… on node N to <verb> V"
	doing    string   // "<doing> volume V …"
}

var wipeJob = agentJob{prefix: "docker-dtr-wipe-", args: []string{"--wipe", MountPoint}, verb: "empty", doing: "emptying"}

// CheckAgent makes sure the agent that Wipe runs can run on the replica's
// node, in the registry's image: a restore checks it before it changes
// anything, so that it can empty the volume again if writing fails.
// agentBinary is --agent-binary, or empty for this plugin's own binary.
func (v *Volume) CheckAgent(ctx context.Context, api API, agentBinary string) error {
	_, err := v.agent(ctx, api, agentBinary, wipeJob)
	return err
}

// agentImage is the agent checked against the registry's image.
type agentImage struct {
	path, arch string
	config     *dockerspec.DockerOCIImageConfig
}

// agent finds and checks the agent binary against the registry's image.
func (v *Volume) agent(ctx context.Context, api API, agentBinary string, job agentJob) (agentImage, error) {
	img, err := api.ImageInspect(ctx, v.Image)
	if err != nil {
		return agentImage{}, fmt.Errorf("inspecting the image of dtr-registry-%s: %w", v.Replica.ID, requestErr(err))
	}
	if img.Os != "" && img.Os != "linux" {
		return agentImage{}, fmt.Errorf("node %s runs %s containers: %s volume %s needs linux", v.Replica.Node, img.Os, job.doing, v.Name)
	}
	path, explicit, err := agentbin.Find(agentBinary)
	if err != nil {
		return agentImage{}, err
	}
	if err := agentbin.Check(path, explicit, v.Replica.Node, img.Architecture); err != nil {
		return agentImage{}, err
	}
	return agentImage{path, img.Architecture, img.Config}, nil
}

// create creates an agent helper, not started, with the agent from the
// node's cache, or copied in (agentbin.Create).
func (v *Volume) create(ctx context.Context, api API, a agentImage, name string, cfg *container.Config, host *container.HostConfig) (string, error) {
	id, _, err := agentbin.Create(ctx, api, agentbin.Helper{Name: name, Config: cfg, Host: host, Binary: a.path, Arch: a.arch, Node: v.Replica.Node})
	return id, requestErr(err)
}

// Wipe removes everything inside the volume, keeping the volume (the
// archive API cannot delete): a helper container from the registry's image
// mounts it read-write, with no network and no logs, and runs this plugin's
// own binary as its entrypoint ("agent --wipe /storage"), as root so that
// whoever owns the files, they go. The helper is removed whatever happens;
// a failure says what the agent printed.
func (v *Volume) Wipe(ctx context.Context, api API, agentBinary string) error {
	_, err := v.runAgent(ctx, api, agentBinary, wipeJob, nil)
	return err
}

// runAgent runs the agent for job in a helper and returns what it printed
// on stdout (its last 4 KiB). stdin, when not nil, is copied to the
// agent's standard input, which is then closed.
func (v *Volume) runAgent(ctx context.Context, api API, agentBinary string, job agentJob, stdin io.Reader) (out string, err error) {
	a, err := v.agent(ctx, api, agentBinary, job)
	if err != nil {
		return "", err
	}
	helpercontainer.RemoveStale(ctx, api)
	b := make([]byte, 4)
	rand.Read(b)
	name := job.prefix + v.Replica.ID + "-" + hex.EncodeToString(b)
	cfg, host := v.agentConfig(a.config, job)
	if stdin != nil {
		cfg.OpenStdin, cfg.StdinOnce, cfg.AttachStdin = true, true, true
	}
	id, err := v.create(ctx, api, a, name, cfg, host)
	if err != nil {
		return "", fmt.Errorf("creating a helper container on node %s to %s %s: %w", v.Replica.Node, job.verb, v.Where(), err)
	}
	h := &helper{api: api, id: id, name: name}
	defer func() {
		if rerr := h.remove(); err == nil {
			err = rerr
		}
	}()
	// Attach, and wait, before starting: no output and no exit is missed.
	hj, err := api.ContainerAttach(ctx, h.id, container.AttachOptions{Stream: true, Stdin: stdin != nil, Stdout: true, Stderr: true})
	if err != nil {
		return "", fmt.Errorf("attaching to helper %s: %w", name, requestErr(err))
	}
	defer hj.Close()
	var stdout, stderr agentbin.Tail
	copied := make(chan struct{})
	go func() {
		stdcopy.StdCopy(&stdout, &stderr, hj.Reader)
		close(copied)
	}()
	waitC, errC := api.ContainerWait(ctx, h.id, container.WaitConditionNextExit)
	if err := api.ContainerStart(ctx, h.id, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("starting helper %s on node %s to %s %s: %w", name, v.Replica.Node, job.verb, v.Where(), requestErr(err))
	}
	var werr error // sending stdin
	if stdin != nil {
		_, werr = io.Copy(hj.Conn, stdin)
		hj.CloseWrite()
	}
	var code int64
	select {
	case w := <-waitC:
		if w.Error != nil && w.Error.Message != "" {
			return "", fmt.Errorf("%s %s: waiting for helper %s: %s", job.doing, v.Where(), name, w.Error.Message)
		}
		code = w.StatusCode
	case err := <-errC:
		return "", fmt.Errorf("%s %s: waiting for helper %s: %w", job.doing, v.Where(), name, requestErr(err))
	}
	// The attach stream ends with the container.
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	switch {
	case werr != nil && (code == 0 || ctx.Err() != nil):
		return "", fmt.Errorf("%s %s: %w", job.doing, v.Where(), werr)
	case code != 0:
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg == "" {
			msg = "it printed nothing"
		}
		if werr != nil {
			msg += " (sending it the content: " + werr.Error() + ")"
		}
		return "", fmt.Errorf("%s %s on node %s failed: the agent in helper %s exited with code %d: %s",
			job.doing, v.Where(), v.Replica.Node, name, code, strings.ReplaceAll(msg, "\n", "; "))
	}
	return stdout.String(), nil
}

// wipeConfig is the wipe helper's configuration.
func (v *Volume) wipeConfig(img *dockerspec.DockerOCIImageConfig) (*container.Config, *container.HostConfig) {
	return v.agentConfig(img, wipeJob)
}

// agentConfig is an agent helper: the registry's image with the agent as
// entrypoint, as root, the volume at /storage (read-write to wipe), no
// network, no logs, no health check, pinned to the replica's node the way
// UCP understands; the image's other volumes become tmpfs, so no anonymous
// volume is made on the node. The container removes itself once the agent
// exits, so a plugin killed while it runs leaves nothing once it is done.
func (v *Volume) agentConfig(img *dockerspec.DockerOCIImageConfig, job agentJob) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image:        v.Image,
		User:         "0:0",
		Entrypoint:   []string{agentbin.Path},
		Cmd:          append([]string{"agent"}, job.args...),
		WorkingDir:   "/",
		AttachStdout: true,
		AttachStderr: true,
		Labels:       helpercontainer.Labels(helpercontainer.KindImages, v.Replica.ID),
		Healthcheck:  &container.HealthConfig{Test: []string{"NONE"}},
	}
	if v.Replica.NodeFromName {
		cfg.Env = []string{"constraint:node==" + v.Replica.Node}
	}
	host := &container.HostConfig{
		NetworkMode: "none",
		LogConfig:   container.LogConfig{Type: "none"},
		AutoRemove:  true,
		Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: v.Name, Target: MountPoint, ReadOnly: job.readOnly}},
	}
	if img != nil {
		for _, dir := range slices.Sorted(maps.Keys(img.Volumes)) {
			if dir != MountPoint {
				host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: dir})
			}
		}
	}
	if v.Bucket != nil {
		v.bucketConfig(cfg, host)
	}
	return cfg, host
}
