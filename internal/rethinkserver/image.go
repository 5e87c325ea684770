package rethinkserver

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// ImageLabel marks the imported server image. It is kept across runs (an
// import costs seconds), unlike what the tests label for removal.
const ImageLabel = "com.docker-dtr.test.rethinkdb"

// containerLabel marks the containers of host tests that run the server in
// the image; its value is the test process's pid, so a later run removes
// only what a dead process left.
const containerLabel = "com.docker-dtr.test.rethinkserver"

var imported struct {
	sync.Mutex
	ref        string
	entrypoint []string
}

// EnsureImage returns an image that runs the server and its entrypoint (the
// server binary; arguments go in Cmd). The rootfs is imported once per
// machine, tagged with its own digest, and reused while it is there.
func EnsureImage(ctx context.Context, cli client.APIClient) (ref string, entrypoint []string, err error) {
	src, err := Find()
	if err != nil {
		return "", nil, err
	}
	imported.Lock()
	defer imported.Unlock()
	if imported.ref != "" {
		return imported.ref, imported.entrypoint, nil
	}
	if src.Rootfs == "" {
		if _, err := cli.ImageInspect(ctx, src.Image); err != nil {
			return "", nil, fmt.Errorf("the RethinkDB image %s (from %s): %w", src.Image, src.From, err)
		}
		imported.ref, imported.entrypoint = src.Image, []string{"rethinkdb"}
		return imported.ref, imported.entrypoint, nil
	}
	f, err := os.Open(src.Rootfs)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", src.Rootfs, err)
	}
	ref = "dtr-test/rethinkdb:2.4.4-" + hex.EncodeToString(h.Sum(nil))[:12]
	entrypoint = []string{"/bin/rethinkdb"}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", nil, err
		}
		rc, err := cli.ImageImport(ctx, image.ImportSource{Source: f, SourceName: "-"}, ref, image.ImportOptions{
			Changes: []string{`ENTRYPOINT ["/bin/rethinkdb"]`, "LABEL " + ImageLabel + "=2.4.4"},
		})
		if err != nil {
			return "", nil, fmt.Errorf("importing %s as %s: %w", src.Rootfs, ref, err)
		}
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		rc.Close()
		if err != nil {
			return "", nil, fmt.Errorf("importing %s as %s: %w", src.Rootfs, ref, err)
		}
	}
	imported.ref, imported.entrypoint = ref, entrypoint
	return ref, entrypoint, nil
}

// startContainer runs the server in the image, for a source without a host
// binary: the driver port is published on loopback, the data is in a tmpfs
// (or nowhere across a restart), the certificates are copied in at /ca.
func (s *Server) startContainer(t TB, src *Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("rethinkserver: %s runs in a container, and the engine: %v", src.Image, err)
	}
	t.Cleanup(func() { cli.Close() })
	sweepContainers(ctx, cli)
	ref, entrypoint, err := EnsureImage(ctx, cli)
	if err != nil {
		t.Fatalf("rethinkserver: %v", err)
	}
	args := []string{"--directory", "/data/rethink", "--bind", "all", "--no-http-admin", "--server-name", "rethinkserver"}
	if s.Options.CacheMB > 0 {
		args = append(args, "--cache-size", strconv.Itoa(s.Options.CacheMB))
	}
	if s.Options.Password != "" {
		args = append(args, "--initial-password", s.Options.Password)
	}
	if s.Certs != nil {
		args = append(args, "--driver-tls-key", "/ca/server-key.pem", "--driver-tls-cert", "/ca/server.pem",
			"--driver-tls-ca", "/ca/ca.pem")
	}
	port := nat.Port("28015/tcp")
	cfg := &container.Config{
		Image: ref, Entrypoint: entrypoint, Cmd: args,
		ExposedPorts: nat.PortSet{port: {}},
		Labels:       map[string]string{containerLabel: strconv.Itoa(os.Getpid())},
	}
	host := &container.HostConfig{
		PortBindings: nat.PortMap{port: {{HostIP: "127.0.0.1"}}},
		Tmpfs:        map[string]string{"/data": ""},
		Resources:    container.Resources{CpusetCpus: s.Options.CPUs},
	}
	created, err := cli.ContainerCreate(ctx, cfg, host, nil, nil, "")
	if err != nil {
		t.Fatalf("rethinkserver: creating a container of %s: %v", ref, err)
	}
	s.container = created.ID
	s.removeContainer = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	}
	t.Cleanup(s.Kill)
	if s.Certs != nil {
		if err := copyCerts(ctx, cli, created.ID, s.Certs); err != nil {
			t.Fatalf("rethinkserver: %v", err)
		}
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("rethinkserver: starting the container of %s: %v", ref, err)
	}
	for {
		logs := containerLogs(ctx, cli, created.ID)
		if strings.Contains(logs, "Server ready") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("rethinkserver: no \"Server ready\" from the container of %s: %s", ref, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ins, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatalf("rethinkserver: %v", err)
	}
	b := ins.NetworkSettings.Ports[port]
	if len(b) == 0 {
		t.Fatalf("rethinkserver: the container of %s published no port", ref)
	}
	s.Addr = "127.0.0.1:" + b[0].HostPort
	s.Directory = "/data/rethink"
}

func copyCerts(ctx context.Context, cli client.APIClient, id string, c *Certs) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "ca/", Mode: 0o755})
	for name, path := range map[string]string{"ca.pem": c.CA, "server.pem": c.ServerCert, "server-key.pem": c.ServerKey} {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		tw.WriteHeader(&tar.Header{Name: "ca/" + name, Mode: 0o644, Size: int64(len(data))})
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{})
}

func containerLogs(ctx context.Context, cli client.APIClient, id string) string {
	rc, err := cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 1<<20))
	return out.String()
}

// sweepContainers removes the server containers of test processes that are
// gone (killed before their cleanup ran).
func sweepContainers(ctx context.Context, cli client.APIClient) {
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", containerLabel))})
	if err != nil {
		return
	}
	for _, c := range list {
		pid, err := strconv.Atoi(c.Labels[containerLabel])
		if err == nil && pid > 0 && !processGone(pid) {
			continue // its process still runs
		}
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
}
