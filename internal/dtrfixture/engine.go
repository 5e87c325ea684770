package dtrfixture

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// Label is on every container, volume, network and image the fixture makes
// (value labelValue), and on the swarm it initialises.
const Label = "com.docker-dtr.test"

const labelValue = "fixture"

func labels() map[string]string { return map[string]string{Label: labelValue} }

func labelFilter() filters.Args { return filters.NewArgs(filters.Arg("label", Label)) }

// networkName is the network every cluster uses, like DTR's.
const networkName = "dtr-ol"

// gwBridge is the bridge the engine makes for containers on overlay networks
// and keeps after leaving swarm mode.
const gwBridge = "docker_gwbridge"

// proc is what the fixture keeps for the whole test process.
var proc struct {
	mu sync.Mutex

	cli    *client.Client
	cliErr error

	// driver is the network driver chosen for dtr-ol: "" until decided.
	driver string
	// swarmInited: this process initialised swarm mode (and leaves it in Teardown).
	swarmInited bool
	// gwBridgeExisted: docker_gwbridge existed before this process initialised swarm.
	gwBridgeExisted bool
	// live names the test whose cluster is up: one at a time.
	live string
}

// engine returns the shared client, or why the engine is out of reach.
func engine() (*client.Client, error) {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.cli != nil || proc.cliErr != nil {
		return proc.cli, proc.cliErr
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err = cli.Ping(ctx); err != nil {
			cli.Close()
		}
	}
	if err != nil {
		proc.cliErr = fmt.Errorf("dtrfixture: no Docker engine: %w", err)
		return nil, proc.cliErr
	}
	proc.cli = cli // Ping negotiated the API version
	return cli, nil
}

// networkDriver decides once per process whether dtr-ol can be an overlay:
// it initialises swarm mode (advertising 127.0.0.1) when the engine is not in
// a swarm, and falls back to a bridge when that is refused or the engine is
// in a swarm it does not manage.
func networkDriver(ctx context.Context, cli *client.Client, logf func(string, ...any)) string {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.driver != "" {
		return proc.driver
	}
	proc.driver = "bridge"
	if os.Getenv("DTRFIXTURE_NETWORK") == "bridge" {
		return proc.driver
	}
	info, err := cli.Info(ctx)
	if err != nil {
		logf("dtrfixture: docker info: %v; using a bridge network", err)
		return proc.driver
	}
	switch {
	case info.Swarm.LocalNodeState == swarm.LocalNodeStateActive && info.Swarm.ControlAvailable:
		proc.driver = "overlay"
	case info.Swarm.LocalNodeState == swarm.LocalNodeStateInactive:
		_, gwErr := cli.NetworkInspect(ctx, gwBridge, network.InspectOptions{})
		_, err := cli.SwarmInit(ctx, swarm.InitRequest{
			ListenAddr:    "127.0.0.1:2377",
			AdvertiseAddr: "127.0.0.1",
			Spec:          swarm.Spec{Annotations: swarm.Annotations{Labels: labels()}},
		})
		if err != nil {
			logf("dtrfixture: swarm init refused (%v); using a bridge network", err)
			return proc.driver
		}
		proc.swarmInited = true
		proc.gwBridgeExisted = gwErr == nil
		proc.driver = "overlay"
	default:
		logf("dtrfixture: swarm state %q (manager: %t); using a bridge network",
			info.Swarm.LocalNodeState, info.Swarm.ControlAvailable)
	}
	return proc.driver
}

// overlayFailed makes the rest of the process use bridge networks.
func overlayFailed() {
	proc.mu.Lock()
	proc.driver = "bridge"
	proc.mu.Unlock()
}

// createNetwork makes dtr-ol with the driver; an overlay is attachable. Its
// subnet is a free 10.231.X.0/24 of the fixture's choosing, so that the
// RethinkDB containers can keep fixed addresses (rethinkAddr) across a
// restart or a reconnection: a RethinkDB server reconnects to a lost peer
// only at the address it knew, and the network would give a container
// another one. Other containers get addresses from the upper half.
func createNetwork(ctx context.Context, cli *client.Client, driver string) (string, netip.Prefix, error) {
	taken := takenSubnets(ctx, cli)
	var lastErr error
	for try := 0; try < 20; try++ {
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, byte(mrand.IntN(256)), 0}), 24)
		if slices.ContainsFunc(taken, subnet.Overlaps) {
			continue
		}
		gateway := subnet.Addr().Next()
		upper := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, subnet.Addr().As4()[2], 128}), 25)
		opts := network.CreateOptions{Driver: driver, Labels: labels(), IPAM: &network.IPAM{
			Config: []network.IPAMConfig{{Subnet: subnet.String(), IPRange: upper.String(), Gateway: gateway.String()}},
		}}
		if driver == "overlay" {
			opts.Attachable = true
		}
		resp, err := cli.NetworkCreate(ctx, networkName, opts)
		if err == nil {
			return resp.ID, subnet, nil
		}
		lastErr = fmt.Errorf("creating %s network %s on %s: %w", driver, networkName, subnet, err)
		if !strings.Contains(strings.ToLower(err.Error()), "overlap") {
			break
		}
		taken = append(taken, subnet)
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("creating %s network %s: no free subnet in 10.231.0.0/16", driver, networkName)
	}
	return "", netip.Prefix{}, lastErr
}

// takenSubnets are the subnets of the engine's networks.
func takenSubnets(ctx context.Context, cli *client.Client) []netip.Prefix {
	list, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, n := range list {
		for _, cfg := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(cfg.Subnet); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// removeNetwork retries while endpoints of just-removed containers linger,
// and waits until the network is gone: a swarm removes an overlay
// asynchronously, and the next cluster reuses the name.
func removeNetwork(ctx context.Context, cli *client.Client, id string) error {
	deadline := time.Now().Add(10 * time.Second)
	removed := false
	var lastErr error
	for {
		if !removed {
			err := cli.NetworkRemove(ctx, id)
			switch {
			case err == nil:
				removed = true
			case errdefs.IsNotFound(err):
				return nil
			default:
				lastErr = err // "has active endpoints" for a moment
			}
		}
		if removed {
			if _, err := cli.NetworkInspect(ctx, id, network.InspectOptions{}); errdefs.IsNotFound(err) {
				return nil
			}
			lastErr = fmt.Errorf("network %s still exists after its removal", id)
		}
		if time.Now().After(deadline) {
			return lastErr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removing network %s: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func removeContainer(ctx context.Context, cli *client.Client, id string) error {
	err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "is already in progress") {
		return err
	}
	return nil
}

func removeVolume(ctx context.Context, cli *client.Client, name string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = cli.VolumeRemove(ctx, name, true)
		if err == nil || errdefs.IsNotFound(err) {
			return nil
		}
		// "volume is in use" until a container's removal completes.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}

// Sweep removes everything carrying Label, and the plugin's own helper
// containers (which hold the fixture's volumes): containers forcibly, then
// networks, then volumes. Call it from TestMain before and after m.Run (a
// killed run leaves things behind). Without a Docker engine it does nothing.
//
// The first call (like the first Start) also takes a lock file that keeps
// other test processes' fixtures off the engine until this process calls
// Teardown or exits: `go test ./...` runs packages in parallel, and they
// share one engine, the name dtr-ol and the label.
func Sweep() error {
	cli, err := engine()
	if err != nil {
		return nil
	}
	lockEngine()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return sweep(ctx, cli)
}

func sweep(ctx context.Context, cli *client.Client) error {
	var errs []error
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter()})
	errs = append(errs, err)
	// The plugin's own helpers, left by a test killed while one ran, hold
	// the fixture's volumes: they go too.
	hs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", helpercontainer.LabelKind))})
	errs = append(errs, err)
	cs = append(cs, hs...)
	// So do restore journals a test left (a restore killed, or left by
	// hand): they hold the image of the fixture's RethinkDB.
	js, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", nodejournal.LabelJournal))})
	errs = append(errs, err)
	cs = append(cs, js...)
	var wg sync.WaitGroup
	cerrs := make([]error, len(cs))
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cerrs[i] = removeContainer(ctx, cli, c.ID)
		}()
	}
	wg.Wait()
	errs = append(errs, cerrs...)
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: labelFilter()})
	errs = append(errs, err)
	for _, n := range ns {
		errs = append(errs, removeNetwork(ctx, cli, n.ID))
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilter()})
	errs = append(errs, err)
	// And the agent cache volumes the plugin made on the engine
	// (pkg/agentbin): state it keeps on purpose, which the tests remove.
	as, err := cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", agentbin.LabelDigest))})
	errs = append(errs, err)
	for _, v := range append(vs.Volumes, as.Volumes...) {
		errs = append(errs, removeVolume(ctx, cli, v.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dtrfixture: sweep: %w", err)
	}
	return nil
}

// Main runs a test package's tests between a Sweep (a killed run leaves its
// cluster behind) and a Teardown, and returns the exit code: call it from
// TestMain, os.Exit(dtrfixture.Main(m)).
func Main(m *testing.M) int {
	if err := Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, "sweeping the test engine:", err)
	}
	code := m.Run()
	if err := Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "tearing down the test engine:", err)
		code = max(code, 1)
	}
	return code
}

// Teardown runs Sweep, removes the fixture's images and leaves swarm mode if
// this process initialised it (or a killed earlier run did: the swarm carries
// Label), then releases the engine lock. Call it from TestMain after m.Run.
func Teardown() error {
	cli, err := engine()
	if err != nil {
		return nil
	}
	lockEngine()
	defer unlockEngine()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := []error{sweep(ctx, cli), removeImages(ctx, cli), untagRethinkImages(ctx, cli)}

	proc.mu.Lock()
	defer proc.mu.Unlock()
	leave := proc.swarmInited
	if !leave {
		if sw, err := cli.SwarmInspect(ctx); err == nil && sw.Spec.Labels[Label] == labelValue {
			leave = true // a killed run of ours initialised it
		}
	}
	if leave {
		if err := cli.SwarmLeave(ctx, true); err != nil {
			errs = append(errs, fmt.Errorf("dtrfixture: leaving swarm mode: %w", err))
		} else if !proc.gwBridgeExisted {
			// Leaving keeps the gateway bridge the overlay made; remove it
			// too so the engine is as we found it.
			if err := removeNetwork(ctx, cli, gwBridge); err != nil {
				// The engine can keep a stale endpoint on it after leaving
				// swarm mode, with no container left (moby/moby#37018):
				// nothing of ours, and only a daemon restart clears it.
				fmt.Fprintf(os.Stderr, "dtrfixture: warning: %s could not be removed (%v): the engine keeps a stale endpoint after leaving swarm mode (moby/moby#37018); restarting dockerd removes it\n", gwBridge, err)
			}
		}
		proc.swarmInited = false
	}
	proc.driver = ""
	clearImages()
	removeBinary()
	removeRegistryBinary()
	return errors.Join(errs...)
}

func removeImages(ctx context.Context, cli *client.Client) error {
	imgs, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: labelFilter()})
	if err != nil {
		return fmt.Errorf("dtrfixture: listing images: %w", err)
	}
	var ids []string
	for _, img := range imgs {
		// The imported RethinkDB is kept across runs, whatever else it
		// carries: an import costs seconds, and other tests share it.
		if _, ok := img.Labels[rethinkserver.ImageLabel]; ok {
			continue
		}
		ids = append(ids, img.ID)
	}
	if err := removeImageIDs(ctx, cli, ids); err != nil {
		return fmt.Errorf("dtrfixture: %w", err)
	}
	return nil
}

// untagRethinkImages removes the fixture's per-version names of the real
// RethinkDB's image (dtrfixture/dtr-rethink:<version>, ensureRethinkImage)
// by name and without force: that only untags, and the image stays under
// its own name.
func untagRethinkImages(ctx context.Context, cli *client.Client) error {
	prefix := imageName("rethinkdb", "")
	// All of them: with a reference filter, the list names only the
	// matching tags of an image, and the other names are what matters.
	imgs, err := cli.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return fmt.Errorf("dtrfixture: listing images: %w", err)
	}
	var errs []error
	for _, img := range imgs {
		ours := slices.DeleteFunc(slices.Clone(img.RepoTags), func(tag string) bool { return !strings.HasPrefix(tag, prefix) })
		if len(ours) == len(img.RepoTags) {
			continue // no other name: removing the last tag would delete the image
		}
		for _, tag := range ours {
			if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("dtrfixture: untagging %s: %w", tag, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeImageIDs removes images forcibly, with all their tags (registry
// tags like 127.0.0.1:PORT/name:tag too) and their untagged parents. Not
// even force removes an image with child images (the classic builder's
// parents): those it retries after the others, until no pass makes progress.
func removeImageIDs(ctx context.Context, cli *client.Client, ids []string) error {
	var left []string
	for _, id := range ids {
		if !slices.Contains(left, id) {
			left = append(left, id)
		}
	}
	var errs []error
	for len(left) > 0 {
		var next []string
		var conflicts []error
		for _, id := range left {
			_, err := cli.ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true})
			switch {
			case err == nil || errdefs.IsNotFound(err):
			case errdefs.IsConflict(err):
				next = append(next, id)
				conflicts = append(conflicts, fmt.Errorf("removing image %s: %w", id, err))
			default:
				errs = append(errs, fmt.Errorf("removing image %s: %w", id, err))
			}
		}
		if len(next) == len(left) {
			errs = append(errs, conflicts...)
			break
		}
		left = next
	}
	return errors.Join(errs...)
}

// inCI reports whether a missing engine is a failure rather than a skip.
func inCI() bool { return os.Getenv("CI") != "" }

// TB is what the fixture needs of a test: testing.TB, or the sandbox's
// stand-in for one (internal/sandbox), which keeps what it starts.
type TB = rethinkserver.TB

// EnvLocked, set in a process's environment, says its parent holds the
// engine lock for it (a test running the sandbox): it does not wait for
// the lock, and leaves the engine's images and swarm to the parent.
const EnvLocked = "DTRFIXTURE_ENGINE_LOCKED"

// LockEngine takes the engine lock for this process, until it exits: for
// a test whose child processes use the fixture with EnvLocked set.
func LockEngine() { lockEngine() }

// Engine is the test engine's client; without one it skips the test
// (fails it under CI), as Start does.
func Engine(t TB) *client.Client {
	t.Helper()
	cli, err := engine()
	if err != nil {
		if inCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return cli
}
