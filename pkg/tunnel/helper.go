package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

const namePrefix = "docker-dtr-tunnel-"

// API is the Docker client; through UCP, these calls reach the replica's node.
type API = client.APIClient

// job is what a helper's agent does: its kind (the helper's label), its
// name's prefix, its role in messages, and the agent's arguments after
// "agent".
type job struct {
	kind, prefix, role string
	args               []string
	// tmp mounts a tmpfs at /tmp: the image may have none, and the dump's
	// archive writer spools its checksums there.
	tmp bool
}

// helper is one helper container and its attach connection.
type helper struct {
	api     API
	id      string
	name    string
	node    string
	replica string
	role    string // "tunnel helper", in messages
	// agent says where its agent came from (the node's cache, or copied).
	agent agentbin.Source

	hijack types.HijackedResponse
	stdout *demux
	stderr *agentbin.Tail

	// exited is closed once the agent exits, with its status in code:
	// the container removes itself then, so it cannot be inspected
	// afterwards.
	exited chan struct{}
	code   int64
	// waitLost is closed when the wait for the exit failed: the engine's
	// connection went (or the wait was stopped).
	waitLost    chan struct{}
	stopWaiting context.CancelFunc
}

// removeTimeout bounds the cleanup, which runs even after Ctrl-C.
const removeTimeout = 30 * time.Second

// createHelper creates (but does not start) the helper container on the
// replica's node, from the image of its RethinkDB container, with the agent
// as its entrypoint: from the node's agent cache, or copied in.
func createHelper(ctx context.Context, api API, rep *dtr.Replica, binary string, j job) (*helper, error) {
	rdb := rep.Container("rethinkdb")
	if rdb == nil {
		return nil, fmt.Errorf("replica %s has no dtr-rethinkdb-%s container", rep.ID, rep.ID)
	}
	img, err := api.ImageInspect(ctx, rdb.ImageID)
	if err != nil {
		return nil, fmt.Errorf("inspecting the image of %s: %w", rdb.Name, err)
	}
	if img.Os != "" && img.Os != "linux" {
		return nil, fmt.Errorf("node %s runs %s containers: the %s needs linux", rep.Node, img.Os, j.role)
	}
	path, explicit, err := agentbin.Find(binary)
	if err != nil {
		return nil, err
	}
	if err := agentbin.Check(path, explicit, rep.Node, img.Architecture); err != nil {
		return nil, err
	}

	cfg, host := helperConfig(rep, rdb.ImageID, img.Config, j)
	name := j.prefix + rep.ID + "-" + randomSuffix()
	id, src, err := agentbin.Create(ctx, api, agentbin.Helper{Name: name, Config: cfg, Host: host, Binary: path, Arch: img.Architecture, Node: rep.Node})
	if err != nil {
		return nil, fmt.Errorf("creating the %s on node %s: %w", j.role, rep.Node, err)
	}
	return &helper{api: api, id: id, name: name, node: rep.Node, replica: rep.ID, role: j.role, stderr: &agentbin.Tail{}, agent: src}, nil
}

// helperConfig is the helper container: the replica's RethinkDB image with
// the agent as entrypoint, in the network namespace of the replica's
// RethinkDB container, DTR's CA volume read-only, no logs, no health check,
// and pinned to the replica's node the way UCP understands. Sharing
// RethinkDB's namespace reaches it at the same dtr-ol name and address
// (its resolver is shared too), and the engine sets up no network for
// the helper: 0.28 s to start against 0.7 s joining dtr-ol, on a bridge
// (overlays cost more). A helper whose RethinkDB dies loses the network,
// which only served that RethinkDB; it talks to the plugin over its
// attach stream.
// The agent exits once the plugin is gone (its attach stream ends, or stays
// silent for IdleTimeout), and the container removes itself then.
func helperConfig(rep *dtr.Replica, imageID string, img *dockerspec.DockerOCIImageConfig, j job) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image:        imageID,
		Entrypoint:   []string{agentbin.Path},
		Cmd:          append([]string{"agent"}, j.args...),
		WorkingDir:   "/",
		OpenStdin:    true,
		StdinOnce:    true, // the agent sees EOF, and exits, when we go away
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		Labels:       helpercontainer.LeaseLabels(j.kind, rep.ID),
		Healthcheck:  &container.HealthConfig{Test: []string{"NONE"}},
	}
	if rep.NodeFromName {
		// UCP schedules plain containers the classic-swarm way.
		cfg.Env = []string{"constraint:node==" + rep.Node}
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode("container:" + rethinkRef(rep)),
		LogConfig:   container.LogConfig{Type: "none"},
		AutoRemove:  true,
		Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: rep.CAVolume(), Target: "/ca", ReadOnly: true}},
	}
	if j.tmp {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: "/tmp"})
	}
	// The image's own volumes (RethinkDB's /data) become tmpfs, so no
	// anonymous volume is made on the node.
	if img != nil {
		for _, dir := range slices.Sorted(maps.Keys(img.Volumes)) {
			if dir != "/ca" && !(j.tmp && dir == "/tmp") {
				host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: dir})
			}
		}
	}
	return cfg, host
}

// rethinkRef names the replica's RethinkDB container for the engine: its
// id, or its name when discovery had none.
func rethinkRef(rep *dtr.Replica) string {
	c := rep.Container("rethinkdb")
	if c.ID != "" {
		return c.ID
	}
	return c.Name
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start attaches, then starts, so no output is missed.
func (h *helper) start(ctx context.Context) error {
	hj, err := h.api.ContainerAttach(ctx, h.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to the %s: %w", h.role, err)
	}
	h.hijack = hj
	h.stdout = &demux{r: hj.Reader, errw: h.stderr}
	// Wait before starting, so that the exit is not missed.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stopWaiting = stop
	h.exited = make(chan struct{})
	h.waitLost = make(chan struct{})
	waitC, errC := h.api.ContainerWait(wctx, h.id, container.WaitConditionNextExit)
	go func() {
		select {
		case w := <-waitC:
			h.code = w.StatusCode
			close(h.exited)
		case <-errC:
			close(h.waitLost)
		}
	}()
	if err := h.api.ContainerStart(ctx, h.id, container.StartOptions{}); err != nil {
		if strings.Contains(err.Error(), "non running container") {
			// It shares RethinkDB's network namespace.
			return fmt.Errorf("starting the %s on node %s: dtr-rethinkdb-%s is not running (check it with docker dtr status)", h.role, h.node, h.replica)
		}
		return fmt.Errorf("starting the %s on node %s: %w", h.role, h.node, err)
	}
	return nil
}

// failure explains why the agent went away: its exit, or what it printed.
func (h *helper) failure(ctx context.Context) string {
	var parts []string
	if st, err := h.api.ContainerInspect(ctx, h.id); err == nil && st.ContainerJSONBase != nil && st.State != nil {
		switch {
		case st.State.Status == "dead":
			// The engine's removal of an exited helper failed (AutoRemove):
			// its error is the storage driver's, not why the agent went.
			parts = append(parts, fmt.Sprintf("it exited with code %d", st.State.ExitCode))
		case st.State.Error != "":
			parts = append(parts, st.State.Error) // it could not start
		case !st.State.Running && st.State.Status == "exited":
			parts = append(parts, fmt.Sprintf("it exited with code %d", st.State.ExitCode))
		}
	}
	if len(parts) == 0 && h.exited != nil {
		// Gone already (it removes itself), or about to be.
		select {
		case <-h.exited:
			parts = append(parts, fmt.Sprintf("it exited with code %d", h.code))
		case <-time.After(5 * time.Second):
		}
	}
	if s := strings.TrimSpace(h.stderr.String()); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, ": ")
}

// exitGrace is how long remove gives the agent to exit by itself once its
// stdin ends: milliseconds when it is well.
const exitGrace = 2 * time.Second

// remove deletes the container, whatever state it is in; it uses its own
// context because it runs after the caller's is cancelled. A started
// agent exits when its stdin ends, and the engine removes the container
// then (AutoRemove): nothing needs that done before the plugin goes on,
// so remove does not wait for it.
func (h *helper) remove() error {
	if h.hijack.Conn != nil {
		h.hijack.Close()
	}
	if h.stopWaiting != nil {
		defer h.stopWaiting()
	}
	if h.exited != nil {
		select {
		case <-h.exited:
			return nil
		case <-time.After(exitGrace):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
	defer cancel()
	if err := helpercontainer.Remove(ctx, h.api, h.id); err != nil {
		return fmt.Errorf("removing the %s %s: %w (remove it with: docker rm -f %s)", h.role, h.name, err, h.name)
	}
	return nil
}
