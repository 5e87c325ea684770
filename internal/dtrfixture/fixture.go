// Package dtrfixture builds a Docker Trusted Registry-shaped cluster on the
// real Docker engine for end-to-end tests: per replica, containers
// dtr-<component>-<id> on the network dtr-ol, the volumes dtr-ca-<id>,
// dtr-rethink-<id> and dtr-registry-<id>, DTR's labels and DTR_VERSION, and
// the real RethinkDB 2.4 with DTR's flags, which requires mutual TLS with the
// certificates at DTR's paths in /ca. The other components' images are built
// FROM scratch around one static helper binary (internal/dtrfixture/dtrfake),
// so no registry is needed; on request (Options.Registry) the registry
// component is a real image registry.
//
// Only one cluster exists at a time, per process (Start fails while another
// is up) and per engine (a lock file keeps other test processes' fixtures
// waiting): clusters share the name dtr-ol. Use Sweep and Teardown from
// TestMain:
//
//	func TestMain(m *testing.M) {
//		if err := dtrfixture.Sweep(); err != nil { ... }
//		code := m.Run()
//		if err := dtrfixture.Teardown(); err != nil { ... }
//		os.Exit(code)
//	}
//
// # RethinkDB
//
// Every dtr-rethinkdb-<id> runs the real server, from the image that
// internal/rethinkserver imports once per machine and keeps (EnsureImage),
// tagged dtrfixture/dtr-rethink:<version> as well, with DTR's flags:
// --bind all --directory /data/rethink --no-http-admin --server-name
// dtr_rethinkdb_<id> --canonical-address dtr-rethinkdb-<id>.dtr-ol and the
// --driver-tls-* files under /ca. Its data is in the volume dtr-rethink-<id>
// at /data, so a RethinkDB stopped (or killed) and started again keeps it.
// Without a server to run, Start skips the test (fails it under CI) with
// rethinkserver.HowToGet.
//
// The replicas form one RethinkDB cluster, as DTR's do: the others join the
// first over the cluster port on dtr-ol, and Start returns once every server
// is connected, so every replica sees the same databases. table_create puts
// a table on one server, whichever RethinkDB picks; Replicate makes every
// table a table of every replica, as DTR's join does: tests that seed data
// and then stop, kill or disconnect replicas call it. Losing the majority is
// then real: with the RethinkDB of n/2+1 replicas stopped, killed or cut off
// (Disconnect), the other servers' tables stop taking writes within seconds
// (WaitMajorityLost).
//
// # A real registry
//
// With Options.Registry, each replica's dtr-registry-<id> runs a real image
// registry instead of a placeholder: distribution v3
// (github.com/distribution/distribution/v3/cmd/registry, a Go tool of the
// module, built static once per process; 3-4 minutes the first time on a
// machine, a few seconds once the Go build cache has it), in the image
// dtrfixture/dtr-registry:<version>. It stores on the filesystem under
// /storage, where the volume dtr-registry-<id> is mounted, so the volume
// holds DTR's layout (docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data,
// docker/registry/v2/repositories/<name>/_manifests, _layers, _uploads); it
// has no auth, no TLS and no cache, and deletes are enabled. It answers
// plain HTTP on Replica.RegistryAddr ("127.0.0.1:PORT", fixed across Stop
// and Start), which the engine pushes to and pulls from without any setting.
//
// Helpers move images through the engine (all take the engine's client,
// Cluster.Client, and fail the test on error):
//
//	BuildImages(t, cli, seed) []TestImage
//	    builds lib/base:1, team/app:1.0, team/app:1.1 (= team/app:latest),
//	    team/web:latest, big:1 FROM scratch with the classic builder: files
//	    generated from the seed, lib/base's layer shared by all, a
//	    BigLayerSize (50 MiB) random layer in big:1.
//	Push(t, cli, registryAddr, images) []Pushed
//	    tags registryAddr/<repo>:<tag> and pushes; returns the manifest
//	    digest and the config and layer blobs (digest, size) as stored.
//	PullAndCompare(t, cli, registryAddr, pushed)
//	    removes the local images, pulls them back, checks the digests.
//	VolumeFiles(t, cli, volume) map[string]string   path -> sha256 hex
//	CorruptBlob(t, cli, volume, digest)             same length, other bytes
//	WipeVolume(t, cli, volume)                      empties it, keeps it
//	BlobPath(digest) string                         where a blob lives in the volume
//
// Every image and helper container they make carries Label: the helpers
// remove what they made on cleanup, and Teardown removes any image carrying
// the label, whatever its tags (127.0.0.1:PORT/... included).
//
// # A registry on S3
//
// StartS3 runs a real S3 server beside a cluster: SeaweedFS (weed mini),
// in the container dtrfixture-s3 on dtr-ol with the alias dtr-s3, so that
// containers on the network reach it at S3.Endpoint
// ("http://dtr-s3:8333"); the test process at S3.HostEndpoint. It has one
// bucket and random static credentials, region us-east-1 (SigV4). Its image
// SeaweedImage is built from the module once per machine (about 10 minutes
// on 2 cores) and kept: Teardown leaves it. UseS3 (or SetRegistryStorage)
// switches the real registries to the s3 driver in front of it
// (S3.RegistryStorage(root)), so pushed images land in the bucket under
// root; S3.Keys lists the bucket and S3.Wipe empties it:
//
//	c := Start(t, Options{Replicas: 1, Components: []string{"registry"}, Registry: true})
//	s3 := StartS3(t, c)
//	c.UseS3(t, s3, "dtr")
//	Push(t, c.Client, c.Replicas[0].RegistryAddr, images)   // -> dtr/docker/registry/v2/... in s3.Bucket
//
// Environment: DTRFIXTURE_NETWORK=bridge skips swarm mode and uses a bridge
// network; DTRFIXTURE_DEBUG=1 prints timings of the steps to stderr.
package dtrfixture

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// DefaultVersion is the DTR version clusters claim by default.
const DefaultVersion = "2.9.4"

// DefaultComponents are the components each replica runs by default.
var DefaultComponents = []string{"rethinkdb", "registry", "api"}

// Options shape a cluster.
type Options struct {
	Replicas int // default 3
	// Version is set as DTR_VERSION on every container and as the image tag.
	// Default DefaultVersion.
	Version string
	// Components each replica runs; nil means DefaultComponents, an empty
	// slice only "rethinkdb", which is always included. Only "api" has a
	// Docker health check.
	Components []string
	// NoVersionEnv leaves DTR_VERSION out of the environment, so only the
	// image tag tells the version.
	NoVersionEnv bool
	// Registry makes each replica's dtr-registry-<id> run a real image
	// registry (distribution v3, a Go tool of the module) that stores in
	// the volume dtr-registry-<id> at /storage, published on
	// Replica.RegistryAddr, instead of a placeholder. The first Start with
	// Registry builds it: 3-4 minutes with a cold Go build cache, a few
	// seconds after. Needs "registry" among the components.
	Registry bool
	// IgnoreSIGTERM are components (not "rethinkdb") whose process
	// ignores SIGTERM, as a hung DTR component does: docker stop waits out
	// its timeout and kills it with SIGKILL.
	IgnoreSIGTERM []string
}

// Cluster is a running fixture cluster.
type Cluster struct {
	Client        *client.Client
	Version       string
	Network       string // always "dtr-ol"
	NetworkDriver string // "overlay" or "bridge": which one this engine allowed
	Replicas      []*Replica
	// PEM files on the host of the test CA and the rethink-client pair, for
	// tests that reach RethinkDB directly.
	CAFile, CertFile, KeyFile string

	components   []string
	ignoreTerm   []string
	noEnv        bool
	realRegistry bool
	pki          *pki
	// rethinkEntrypoint runs the server in its image (ensureRethinkImage).
	rethinkEntrypoint []string

	// disconnected are the replicas whose RethinkDB Disconnect took off dtr-ol.
	disconnected map[string]bool

	mu         sync.Mutex // guards what was created, for cleanup
	networkID  string
	volumes    []string
	containers []string
}

// Replica is one DTR replica of a cluster.
type Replica struct {
	ID         string            // 12 lowercase hex
	Containers map[string]string // component -> container name, "rethinkdb" -> "dtr-rethinkdb-<id>"
	// RethinkAddr is "127.0.0.1:PORT": the RethinkDB driver port published on
	// loopback, for tests that bypass the plugin's tunnel. It stays the same
	// across Stop and Start.
	RethinkAddr string
	// RegistryAddr is "127.0.0.1:PORT", where the real registry of the
	// replica answers plain HTTP (Options.Registry; "" without it). It stays
	// the same across Stop and Start. The engine pushes to and pulls from
	// it without any daemon setting: tag images RegistryAddr+"/name:tag".
	RegistryAddr string

	hostPort     string
	registryPort string
	rethinkIP    string // its RethinkDB's fixed address on dtr-ol
}

const (
	rethinkPort     = "28015"
	clusterPort     = "29015"
	healthComponent = "api"       // the only component with a health check
	stopTimeout     = 2           // seconds, for docker stop
	waitTimeout     = time.Minute // for RethinkDB and health checks
	startTimeout    = 3 * time.Minute
	cleanupTimeout  = time.Minute
	// tablesTimeout bounds waiting for tables to be ready (Replicate, after
	// a restart) and for a lost majority to show: seconds each, here.
	tablesTimeout   = 2 * time.Minute
	healthInterval  = time.Second
	healthStatusNil = "none"
)

func containerName(component, id string) string { return "dtr-" + component + "-" + id }

// Start builds the images (once per process), creates the network, volumes
// and containers of a fresh cluster, waits until every RethinkDB answers a TLS
// handshake on RethinkAddr, every server has joined the first one's cluster
// and every health-checked container is healthy, and registers t.Cleanup to
// remove everything it made (even when the test fails). Without a Docker
// engine or a RethinkDB server it calls t.Skip, except under CI
// (os.Getenv("CI") != "") where it calls t.Fatal.
func Start(t TB, opts Options) *Cluster {
	t.Helper()
	cli := Engine(t)
	rethinkserver.Require(t)
	lockEngine()
	proc.mu.Lock()
	live := proc.live
	if live == "" {
		proc.live = t.Name()
	}
	proc.mu.Unlock()
	if live != "" {
		t.Fatalf("dtrfixture: one cluster at a time: the cluster of %s is still up", live)
	}
	t.Cleanup(func() { // runs after the removal registered below
		proc.mu.Lock()
		proc.live = ""
		proc.mu.Unlock()
	})
	if opts.Replicas <= 0 {
		opts.Replicas = 3
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	comps := []string{"rethinkdb"}
	if opts.Components == nil {
		opts.Components = DefaultComponents
	}
	for _, c := range opts.Components {
		if !slices.Contains(comps, c) {
			comps = append(comps, c)
		}
	}
	if opts.Registry && !slices.Contains(comps, "registry") {
		t.Fatalf("dtrfixture: Options.Registry needs the component \"registry\" (components: %v)", comps)
	}
	for _, c := range opts.IgnoreSIGTERM {
		if c == "rethinkdb" || (c == "registry" && opts.Registry) || !slices.Contains(comps, c) {
			t.Fatalf("dtrfixture: Options.IgnoreSIGTERM names %q, which is not a placeholder component of %v", c, comps)
		}
	}

	began := time.Now()
	timeout := startTimeout
	if opts.Registry {
		timeout += registryBuildTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Images build while the network side gets ready.
	var imagesDone time.Time
	var rethinkEntrypoint []string
	imagesErr := make(chan error, 1)
	go func() {
		var err error
		rethinkEntrypoint, err = ensureRethinkImage(ctx, cli, opts.Version)
		if err == nil {
			err = ensureImages(ctx, cli, opts.Version, comps, opts.Registry)
		}
		imagesDone = time.Now()
		imagesErr <- err
	}()
	imagesWaited := false
	defer func() {
		if !imagesWaited {
			<-imagesErr
		}
	}()

	ids := make([]string, 0, opts.Replicas)
	for len(ids) < opts.Replicas {
		if id := newReplicaID(); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	pki, err := newPKI(ids)
	if err != nil {
		t.Fatalf("dtrfixture: certificates: %v", err)
	}
	c := &Cluster{
		Client:       cli,
		Version:      opts.Version,
		Network:      networkName,
		components:   comps,
		ignoreTerm:   opts.IgnoreSIGTERM,
		noEnv:        opts.NoVersionEnv,
		realRegistry: opts.Registry,
		pki:          pki,
	}
	if c.CAFile, c.CertFile, c.KeyFile, err = pki.writeFiles(t.TempDir()); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	for _, id := range ids {
		rep := &Replica{ID: id, Containers: map[string]string{}}
		for _, comp := range comps {
			rep.Containers[comp] = containerName(comp, id)
		}
		c.Replicas = append(c.Replicas, rep)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if t.Failed() {
			c.logState(ctx, t)
		}
		if err := c.remove(ctx); err != nil {
			t.Errorf("dtrfixture: cleanup: %v", err)
		}
	})
	// What an earlier cluster of this process failed to remove, or a killed
	// run left when TestMain does not Sweep, would collide with this one.
	if err := sweep(ctx, cli); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}

	c.NetworkDriver = networkDriver(ctx, cli, t.Logf)
	debugf("network driver %s", c.NetworkDriver)
	imagesWaited = true
	if err := <-imagesErr; err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	c.rethinkEntrypoint = rethinkEntrypoint
	debugf("images ready")
	if opts.Registry && registryBinary.builtAt.After(began) {
		t.Logf("dtrfixture: built the registry in %s", registryBinary.took.Round(100*time.Millisecond))
	}
	err = c.up(ctx)
	debugf("up")
	if err != nil && c.NetworkDriver == "overlay" {
		t.Logf("dtrfixture: cluster on an overlay network failed (%v); retrying on a bridge network", err)
		if err := c.remove(ctx); err != nil {
			t.Fatalf("dtrfixture: %v", err)
		}
		overlayFailed()
		c.NetworkDriver = "bridge"
		err = c.up(ctx)
	}
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if err := c.waitReady(ctx, c.Replicas, comps); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("ready")
	if err := c.waitJoined(ctx); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("joined")
	t.Logf("dtrfixture: %d replicas of DTR %s (%s) on the %s network %s up in %s (images ready after %s)",
		len(ids), opts.Version, strings.Join(comps, ", "), c.NetworkDriver, networkName,
		time.Since(began).Round(10*time.Millisecond), imagesDone.Sub(began).Round(10*time.Millisecond))
	return c
}

func newReplicaID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// freePort picks a loopback port to publish RethinkDB or the registry on,
// skipping the ports in used and adding the one it picks. It stays fixed for
// the container's life (a random published port changes on every start) and
// comes from below the kernel's and Docker's ephemeral ranges.
func freePort(used map[string]bool) (string, error) {
	for i := 0; i < 50; i++ {
		p := strconv.Itoa(20000 + mrand.IntN(12000))
		if used[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err == nil {
			ln.Close()
			used[p] = true
			return p, nil
		}
	}
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		_, p, err := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		if err != nil {
			return "", err
		}
		if !used[p] {
			used[p] = true
			return p, nil
		}
	}
	return "", errors.New("no free loopback port")
}

// up creates the network, volumes and containers and starts them.
func (c *Cluster) up(ctx context.Context) error {
	id, subnet, err := createNetwork(ctx, c.Client, c.NetworkDriver)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.networkID = id
	c.mu.Unlock()
	for i, rep := range c.Replicas {
		b := subnet.Addr().As4()
		b[3] = byte(10 + i)
		rep.rethinkIP = netip.AddrFrom4(b).String()
	}

	caTar, err := c.pki.volumeTar()
	if err != nil {
		return err
	}
	usedPorts := map[string]bool{}
	for _, rep := range c.Replicas {
		for _, v := range []string{"dtr-ca-", "dtr-rethink-", "dtr-registry-"} {
			name := v + rep.ID
			if _, err := c.Client.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels()}); err != nil {
				return fmt.Errorf("creating volume %s: %w", name, err)
			}
			c.mu.Lock()
			c.volumes = append(c.volumes, name)
			c.mu.Unlock()
		}
		if rep.hostPort, err = freePort(usedPorts); err != nil {
			return err
		}
		rep.RethinkAddr = net.JoinHostPort("127.0.0.1", rep.hostPort)
		if c.realRegistry {
			if rep.registryPort, err = freePort(usedPorts); err != nil {
				return err
			}
			rep.RegistryAddr = net.JoinHostPort("127.0.0.1", rep.registryPort)
		}
	}
	// Create every container (and fill the CA volumes), then start them.
	ids := make([]map[string]string, len(c.Replicas))
	err = forEach(len(c.Replicas), len(c.Replicas), func(i int) (err error) {
		ids[i], err = c.createReplica(ctx, c.Replicas[i], caTar)
		return err
	})
	if err != nil {
		return err
	}
	var starts, names []string
	for _, comp := range startOrder(c.components) {
		for i, rep := range c.Replicas {
			starts = append(starts, ids[i][comp])
			names = append(names, rep.Containers[comp])
		}
	}
	// The engine here spends ~1s of mostly waiting per start; three at a
	// time is about 1.5x faster than one, and more gains nothing on 2 cores.
	return forEach(len(starts), parallelStarts, func(i int) error {
		t0 := time.Now()
		if err := c.Client.ContainerStart(ctx, starts[i], container.StartOptions{}); err != nil {
			return fmt.Errorf("starting %s: %w", names[i], err)
		}
		debugf("started %s in %s", names[i], time.Since(t0))
		return nil
	})
}

const parallelStarts = 3

// startOrder puts health-checked components first: their first check runs
// one interval after they start, so that wait overlaps the other starts.
func startOrder(comps []string) []string {
	out := slices.Clone(comps)
	slices.SortStableFunc(out, func(a, b string) int {
		switch {
		case a == healthComponent && b != healthComponent:
			return -1
		case b == healthComponent && a != healthComponent:
			return 1
		}
		return 0
	})
	return out
}

// forEach runs f(0..n-1) with at most par at a time and joins the errors.
func forEach(n, par int, f func(int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createReplica creates the containers of a replica and fills its CA
// volume; it returns their ids by component.
func (c *Cluster) createReplica(ctx context.Context, rep *Replica, caTar []byte) (map[string]string, error) {
	ids := map[string]string{}
	for _, comp := range c.components {
		name := rep.Containers[comp]
		cfg, hostCfg := c.containerConfig(rep, comp)
		netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			networkName: c.endpoint(rep, comp),
		}}
		resp, err := c.Client.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, name)
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", name, err)
		}
		c.mu.Lock()
		c.containers = append(c.containers, resp.ID)
		c.mu.Unlock()
		ids[comp] = resp.ID
		if comp == "rethinkdb" {
			// The created container mounts the CA volume: fill it before
			// anything starts and reads it.
			if err := c.Client.CopyToContainer(ctx, resp.ID, "/ca", bytes.NewReader(caTar), container.CopyToContainerOptions{}); err != nil {
				return nil, fmt.Errorf("copying certificates into %s: %w", name, err)
			}
		}
	}
	return ids, nil
}

func (c *Cluster) containerConfig(rep *Replica, comp string) (*container.Config, *container.HostConfig) {
	cfg := &container.Config{
		Image: imageName(comp, c.Version),
		Cmd:   []string{"component", comp},
		Labels: map[string]string{
			Label:                        labelValue,
			"com.docker.compose.project": fmt.Sprintf("Docker Trusted Registry %s - (Replica %s)", c.Version, rep.ID),
			"com.docker.compose.service": comp,
		},
	}
	if !c.noEnv {
		cfg.Env = []string{"DTR_VERSION=" + c.Version}
	}
	if slices.Contains(c.ignoreTerm, comp) {
		cfg.Env = append(cfg.Env, "DTRFAKE_IGNORE_SIGTERM=1")
	}
	hostCfg := &container.HostConfig{
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "dtr-ca-" + rep.ID, Target: "/ca"}},
	}
	switch comp {
	case "rethinkdb":
		cfg.Entrypoint = c.rethinkEntrypoint
		cfg.Cmd = c.rethinkArgs(rep)
		port := nat.Port(rethinkPort + "/tcp")
		cfg.ExposedPorts = nat.PortSet{port: {}}
		hostCfg.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: rep.hostPort}}}
		hostCfg.Mounts = append(hostCfg.Mounts, mount.Mount{Type: mount.TypeVolume, Source: "dtr-rethink-" + rep.ID, Target: "/data"})
	case "registry":
		hostCfg.Mounts = append(hostCfg.Mounts, mount.Mount{Type: mount.TypeVolume, Source: "dtr-registry-" + rep.ID, Target: "/storage"})
		if c.realRegistry {
			cfg.Cmd = []string{"serve", registryConfigPath}
			port := nat.Port(registryPort + "/tcp")
			cfg.ExposedPorts = nat.PortSet{port: {}}
			hostCfg.PortBindings = nat.PortMap{port: {{HostIP: "127.0.0.1", HostPort: rep.registryPort}}}
		}
	case healthComponent:
		cfg.Healthcheck = &container.HealthConfig{
			Test:     []string{"CMD", "/dtrfake", "health"},
			Interval: healthInterval,
			Timeout:  10 * time.Second,
			Retries:  1,
		}
	}
	return cfg, hostCfg
}

// endpoint is a container's place on dtr-ol: its name, and for RethinkDB
// a fixed address (createNetwork says why).
func (c *Cluster) endpoint(rep *Replica, comp string) *network.EndpointSettings {
	name := rep.Containers[comp]
	ep := &network.EndpointSettings{Aliases: []string{name}}
	if comp == "rethinkdb" {
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: rep.rethinkIP}
	}
	return ep
}

// rethinkArgs are DTR's flags for a replica's server; the others join the
// first. A server that comes back finds its peers, and they it, at the
// fixed addresses they knew (a restarted first has no --join). Like DTR's,
// a joining server exits at once if the first's name does not resolve: its
// container must be running.
func (c *Cluster) rethinkArgs(rep *Replica) []string {
	name := rep.Containers["rethinkdb"]
	args := []string{"--bind", "all", "--directory", "/data/rethink", "--no-http-admin",
		"--server-name", serverName(rep.ID),
		"--canonical-address", name + "." + networkName,
		"--driver-tls-key", "/ca/rethink-client/key.pem",
		"--driver-tls-cert", "/ca/rethink-client/cert.pem",
		"--driver-tls-ca", "/ca/rethink/cert.pem"}
	if first := c.Replicas[0]; first != rep {
		args = append(args, "--join", first.Containers["rethinkdb"]+"."+networkName+":"+clusterPort)
	}
	return args
}

// serverName is the RethinkDB server name of a replica, as DTR names it
// (server_status, table_config).
func serverName(replicaID string) string { return "dtr_rethinkdb_" + replicaID }

// remove deletes what the cluster made: containers, network, volumes.
func (c *Cluster) remove(ctx context.Context) error {
	c.mu.Lock()
	containers, volumes, networkID := c.containers, c.volumes, c.networkID
	c.containers, c.volumes, c.networkID = nil, nil, ""
	c.mu.Unlock()
	// A restore journal a test left (pkg/nodejournal) goes with its replica.
	for _, rep := range c.Replicas {
		containers = append(containers, nodejournal.NamePrefix+rep.ID)
	}
	errs := make([]error, len(containers))
	var wg sync.WaitGroup
	for i, id := range containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = removeContainer(ctx, c.Client, id)
		}()
	}
	wg.Wait()
	if networkID != "" {
		errs = append(errs, removeNetwork(ctx, c.Client, networkID))
	}
	for _, v := range volumes {
		errs = append(errs, removeVolume(ctx, c.Client, v))
	}
	return errors.Join(errs...)
}

// waitReady waits for the RethinkDB and real registry of the replicas to
// answer and for their health-checked containers to report a status
// ("healthy" on a fresh start).
func (c *Cluster) waitReady(ctx context.Context, reps []*Replica, comps []string) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	var errs []error
	for _, rep := range reps {
		if slices.Contains(comps, "rethinkdb") {
			errs = append(errs, c.waitRethink(ctx, rep))
		}
		if c.realRegistry && slices.Contains(comps, "registry") {
			errs = append(errs, c.waitRegistry(ctx, rep))
		}
	}
	for _, rep := range reps {
		if slices.Contains(comps, healthComponent) && rep.Containers[healthComponent] != "" {
			_, err := c.waitHealth(ctx, rep.Containers[healthComponent], func(s string) bool { return s != "starting" })
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitRethink waits until RethinkAddr completes a TLS handshake with the
// client pair: the published port accepts connections before the server
// listens (docker-proxy), so a plain connect proves nothing.
//
// A joining server started before the first one's name is in dtr-ol's
// name service (the starts run three at a time) exits at once with
// "getaddrinfo() failed": it is started again, a few times, as DTR's
// restart policy would.
func (c *Cluster) waitRethink(ctx context.Context, rep *Replica) error {
	for attempt := 1; ; attempt++ {
		err := c.waitRethinkOnce(ctx, rep)
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "getaddrinfo() failed") {
			return err
		}
		name := rep.Containers["rethinkdb"]
		debugf("%s could not resolve the server it joins yet; starting it again (%d)", name, attempt)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
		if serr := c.Client.ContainerStart(ctx, name, container.StartOptions{}); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

func (c *Cluster) waitRethinkOnce(ctx context.Context, rep *Replica) error {
	name := rep.Containers["rethinkdb"]
	cfg := c.pki.clientTLS(name + "." + networkName)
	return c.waitAnswer(ctx, name, "RethinkDB of "+name, rep.RethinkAddr, func() error {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := d.DialContext(hctx, "tcp", rep.RethinkAddr)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// waitAnswer polls probe until it succeeds, the container stops (its logs
// then say why) or ctx ends.
func (c *Cluster) waitAnswer(ctx context.Context, name, what, addr string, probe func() error) error {
	var lastErr error
	for i := 0; ; i++ {
		if lastErr = probe(); lastErr == nil {
			return nil
		}
		if i%10 == 9 {
			if st, err := c.Client.ContainerInspect(ctx, name); err == nil && !st.State.Running {
				return fmt.Errorf("%s is %s (exit code %d): %s", name, st.State.Status, st.State.ExitCode, c.logs(ctx, name))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not answer on %s: %v (logs: %s)", what, addr, lastErr, c.logs(ctx, name))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitHealth polls the health status of a container until ok accepts it.
func (c *Cluster) waitHealth(ctx context.Context, name string, ok func(string) bool) (string, error) {
	status := ""
	for {
		st, err := c.Client.ContainerInspect(ctx, name)
		if err != nil {
			return "", err
		}
		status = healthStatusNil
		if st.State != nil && st.State.Health != nil {
			status = st.State.Health.Status
		}
		if ok(status) {
			return status, nil
		}
		select {
		case <-ctx.Done():
			return status, fmt.Errorf("%s: health status still %q", name, status)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logs returns the tail of a container's output, for error messages.
func (c *Cluster) logs(ctx context.Context, name string) string {
	return containerLogs(ctx, c.Client, name)
}

func containerLogs(ctx context.Context, cli *client.Client, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rc, err := cli.ContainerLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10)); err != nil {
		return err.Error()
	}
	return strings.TrimSpace(out.String())
}

// logState reports every container's state after a failed test.
func (c *Cluster) logState(ctx context.Context, t TB) {
	for _, rep := range c.Replicas {
		for _, comp := range c.components {
			name := rep.Containers[comp]
			st, err := c.Client.ContainerInspect(ctx, name)
			if err != nil {
				t.Logf("dtrfixture: %s: %v", name, err)
				continue
			}
			health := ""
			if st.State.Health != nil {
				health = " (" + st.State.Health.Status + ")"
			}
			t.Logf("dtrfixture: %s: %s%s", name, st.State.Status, health)
		}
	}
}

// Replica returns the replica with the id, or nil.
func (c *Cluster) Replica(id string) *Replica {
	for _, rep := range c.Replicas {
		if rep.ID == id {
			return rep
		}
	}
	return nil
}

func (c *Cluster) replica(t TB, id string, components []string) (*Replica, []string) {
	t.Helper()
	rep := c.Replica(id)
	if rep == nil {
		t.Fatalf("dtrfixture: no replica %q", id)
	}
	if len(components) == 0 {
		return rep, c.components
	}
	for _, comp := range components {
		if rep.Containers[comp] == "" {
			t.Fatalf("dtrfixture: replica %s has no component %q", id, comp)
		}
	}
	return rep, components
}

// Stop stops containers of a replica (docker stop, 2s timeout); no
// components means all of them. RethinkDB shuts down cleanly on SIGTERM,
// well within the timeout.
func (c *Cluster) Stop(t TB, replicaID string, components ...string) {
	t.Helper()
	rep, comps := c.replica(t, replicaID, components)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	timeout := stopTimeout
	err := forEach(len(comps), parallelStarts, func(i int) error {
		if err := c.Client.ContainerStop(ctx, rep.Containers[comps[i]], container.StopOptions{Timeout: &timeout}); err != nil {
			return fmt.Errorf("stopping %s: %w", rep.Containers[comps[i]], err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("stopped %s %v", replicaID, comps)
}

// Start starts stopped containers of a replica again (no components means
// all of them) and waits until its RethinkDB and real registry answer, if
// started, and its health-checked containers have a status again. A
// restarted RethinkDB keeps its data (the volume dtr-rethink-<id>), rejoins
// the others, and Start waits until the tables it can serve (those with a
// majority of their replicas on running servers) are ready for writes.
// RethinkAddr and RegistryAddr stay the same; the registry keeps what its
// volume holds.
func (c *Cluster) Start(t TB, replicaID string, components ...string) {
	t.Helper()
	rep, comps := c.replica(t, replicaID, components)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	comps = startOrder(comps)
	err := forEach(len(comps), parallelStarts, func(i int) error {
		if err := c.Client.ContainerStart(ctx, rep.Containers[comps[i]], container.StartOptions{}); err != nil {
			return fmt.Errorf("starting %s: %w", rep.Containers[comps[i]], err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	debugf("started %s %v", replicaID, comps)
	if err := c.waitReady(ctx, []*Replica{rep}, comps); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if slices.Contains(comps, "rethinkdb") {
		if err := c.waitTables(rep); err != nil {
			t.Fatalf("dtrfixture: %v", err)
		}
	}
	debugf("ready %s", replicaID)
}

// SetUnhealthy makes the health check of a running component fail (or pass
// again) and waits until Docker reports it "unhealthy" (or "healthy"). Only
// "api" has a health check.
func (c *Cluster) SetUnhealthy(t TB, replicaID, component string, unhealthy bool) {
	t.Helper()
	rep, _ := c.replica(t, replicaID, []string{component})
	name := rep.Containers[component]
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if ci, err := c.Client.ContainerInspect(ctx, name); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	} else if ci.Config.Healthcheck == nil {
		t.Fatalf("dtrfixture: %s has no health check (only %q has one)", name, healthComponent)
	}
	want := "healthy"
	if unhealthy {
		want = "unhealthy"
	}
	if err := c.exec(ctx, name, "/dtrfake", "set-health", want); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
	if _, err := c.waitHealth(ctx, name, func(s string) bool { return s == want }); err != nil {
		t.Fatalf("dtrfixture: %v", err)
	}
}

// exec runs a command in a running container and checks its exit code.
func (c *Cluster) exec(ctx context.Context, name string, cmd ...string) error {
	ex, err := c.Client.ContainerExecCreate(ctx, name, container.ExecOptions{Cmd: cmd})
	if err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	if err := c.Client.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("exec in %s: %w", name, err)
	}
	for {
		st, err := c.Client.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return fmt.Errorf("exec in %s: %w", name, err)
		}
		if !st.Running && (st.Pid != 0 || st.ExitCode != 0) { // started and done
			if st.ExitCode != 0 {
				return fmt.Errorf("exec %q in %s: exit code %d", cmd, name, st.ExitCode)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("exec %q in %s: %w", cmd, name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TLSConfig is a client configuration for a replica's RethinkDB: it presents
// the rethink-client pair, trusts the CA and verifies the name
// dtr-rethinkdb-<id>.dtr-ol, as DTR's own tools do.
func (c *Cluster) TLSConfig(replicaID string) *tls.Config {
	return c.pki.clientTLS(containerName("rethinkdb", replicaID) + "." + networkName)
}

// Connect opens a rethinkdb-go session to a replica's RethinkAddr with the
// client certificate and ServerName "dtr-rethinkdb-<id>.dtr-ol", closed on
// cleanup.
func (c *Cluster) Connect(t TB, replicaID string) *r.Session {
	t.Helper()
	rep, _ := c.replica(t, replicaID, nil)
	sess, err := c.dial(rep)
	if err != nil {
		t.Fatalf("dtrfixture: connecting to the RethinkDB of replica %s at %s: %v", replicaID, rep.RethinkAddr, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

// dial opens a driver session to a replica's RethinkAddr, as Connect does.
func (c *Cluster) dial(rep *Replica) (*r.Session, error) {
	return r.Connect(r.ConnectOpts{
		Address:   rep.RethinkAddr,
		TLSConfig: c.TLSConfig(rep.ID),
		Timeout:   10 * time.Second,
	})
}

func debugf(f string, a ...any) {
	if os.Getenv("DTRFIXTURE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+f+"\n", a...)
	}
}
