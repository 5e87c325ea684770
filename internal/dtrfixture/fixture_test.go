package dtrfixture

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestMain(m *testing.M) {
	if err := Sweep(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	// Teardown removes what the fixture made, and only untags the real
	// RethinkDB's image: importing it again would cost every run seconds.
	if ref := images.rethink; ref != "" {
		if _, err := proc.cli.ImageInspect(context.Background(), ref); err != nil {
			fmt.Fprintf(os.Stderr, "Teardown removed the RethinkDB image %s: %v\n", ref, err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

var replicaIDPattern = regexp.MustCompile(`^[0-9a-f]{12}$`)

func TestCluster(t *testing.T) {
	cli, err := engine()
	if err != nil && !inCI() {
		t.Skip(err)
	}
	t.Run("lifecycle", func(t *testing.T) {
		began := time.Now()
		c := Start(t, Options{})
		t.Logf("Start took %s (network driver %s)", time.Since(began).Round(time.Millisecond), c.NetworkDriver)
		ctx := context.Background()

		assert.Equal(t, c.Version, DefaultVersion)
		assert.Equal(t, c.Network, "dtr-ol")
		assert.Assert(t, c.NetworkDriver == "overlay" || c.NetworkDriver == "bridge", c.NetworkDriver)
		assert.Equal(t, len(c.Replicas), 3)
		assert.Assert(t, slices.IsSortedFunc(c.Replicas, func(a, b *Replica) int { return strings.Compare(a.ID, b.ID) }))
		for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile} {
			_, err := os.Stat(f)
			assert.NilError(t, err)
		}

		nw, err := c.Client.NetworkInspect(ctx, "dtr-ol", network.InspectOptions{})
		assert.NilError(t, err)
		assert.Equal(t, nw.Driver, c.NetworkDriver)
		assert.Equal(t, nw.Labels[Label], "fixture")
		if c.NetworkDriver == "overlay" {
			assert.Assert(t, nw.Attachable)
		}

		for _, rep := range c.Replicas {
			checkReplica(t, c, rep)
		}

		t.Run("names resolve on dtr-ol", func(t *testing.T) {
			var addrs []string
			for _, rep := range c.Replicas {
				addrs = append(addrs, "dtr-rethinkdb-"+rep.ID+".dtr-ol:28015")
			}
			code, out := runOnNetwork(t, c, append([]string{"dial"}, addrs...)...)
			t.Logf("dial from a container on dtr-ol:\n%s", out)
			assert.Equal(t, code, 0, out)
		})

		t.Run("one RethinkDB cluster", func(t *testing.T) {
			sess := c.Connect(t, c.Replicas[0].ID)
			var servers []string
			assert.NilError(t, r.DB("rethinkdb").Table("server_status").Field("name").OrderBy(r.Row).ReadAll(&servers, sess))
			var want []string
			for _, rep := range c.Replicas {
				want = append(want, "dtr_rethinkdb_"+rep.ID)
			}
			assert.DeepEqual(t, servers, want)
			var version string
			assert.NilError(t, r.DB("rethinkdb").Table("server_status").Nth(0).Field("process").Field("version").ReadOne(&version, sess))
			assert.Assert(t, is.Contains(version, "rethinkdb 2.4."))
		})

		t.Run("connect", func(t *testing.T) {
			sess := c.Connect(t, c.Replicas[0].ID)
			_, err := r.DBCreate("dtr2").RunWrite(sess)
			assert.NilError(t, err)
			_, err = r.DB("dtr2").TableCreate("properties").RunWrite(sess)
			assert.NilError(t, err)
			res, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "ha.json", "value": "{}"}).RunWrite(sess)
			assert.NilError(t, err)
			assert.Equal(t, res.Inserted, 1)
			var doc map[string]any
			assert.NilError(t, r.DB("dtr2").Table("properties").Get("ha.json").ReadOne(&doc, sess))
			assert.Equal(t, doc["value"], "{}")

			// One cluster: every replica sees it.
			other := c.Connect(t, c.Replicas[1].ID)
			assert.NilError(t, r.DB("dtr2").Table("properties").Get("ha.json").ReadOne(&doc, other))
			assert.Equal(t, doc["value"], "{}")

			// Mutual TLS: no client certificate, no connection; and the
			// server certificate names the replica's RethinkDB.
			noCert := c.TLSConfig(c.Replicas[0].ID)
			noCert.Certificates = nil
			_, err = r.Connect(r.ConnectOpts{Address: c.Replicas[0].RethinkAddr, TLSConfig: noCert, Timeout: 5 * time.Second})
			assert.Assert(t, err != nil, "connecting without a client certificate must fail")
			for _, name := range []string{"dtr-rethinkdb-" + c.Replicas[2].ID, "localhost", "127.0.0.1"} {
				cfg := c.TLSConfig(c.Replicas[0].ID)
				cfg.ServerName = name
				conn, err := tls.Dial("tcp", c.Replicas[0].RethinkAddr, cfg)
				assert.NilError(t, err, name)
				conn.Close()
			}
		})

		t.Run("stop and start", func(t *testing.T) {
			// Every table on every replica, so that the data is there
			// whichever replica stops.
			c.Replicate(t)
			rep := c.Replicas[0]
			// The real server stops on SIGTERM as PID 1, well within docker
			// stop's timeout rather than by its SIGKILL.
			began := time.Now()
			c.Stop(t, rep.ID, "rethinkdb")
			took := time.Since(began)
			t.Logf("docker stop of %s took %s", rep.Containers["rethinkdb"], took.Round(time.Millisecond))
			assert.Equal(t, state(t, c, rep.Containers["rethinkdb"]).ExitCode, 0, "killed rather than stopped")
			assert.Assert(t, took < stopTimeout*time.Second, "took %s", took)
			c.Stop(t, rep.ID)
			for comp := range rep.Containers {
				assert.Equal(t, state(t, c, rep.Containers[comp]).Status, "exited", comp)
			}
			if h := state(t, c, rep.Containers["api"]).Health; h != nil {
				t.Logf("health status of a stopped container: %q", h.Status)
			}
			_, err := net.DialTimeout("tcp", rep.RethinkAddr, time.Second)
			assert.Assert(t, err != nil, "the published port must be closed while rethinkdb is stopped")
			addr := rep.RethinkAddr
			c.Start(t, rep.ID)
			assert.Equal(t, rep.RethinkAddr, addr)
			for comp := range rep.Containers {
				assert.Equal(t, state(t, c, rep.Containers[comp]).Status, "running", comp)
			}
			assert.Equal(t, state(t, c, rep.Containers["api"]).Health.Status, "healthy")
			// It kept its data, in its volume.
			sess := c.Connect(t, rep.ID)
			var doc map[string]any
			assert.NilError(t, r.DB("dtr2").Table("properties").Get("ha.json").ReadOne(&doc, sess))
			assert.Equal(t, doc["value"], "{}")
			_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "after-restart"}).RunWrite(sess)
			assert.NilError(t, err)

			// One component only.
			rep = c.Replicas[1]
			c.Stop(t, rep.ID, "api")
			assert.Equal(t, state(t, c, rep.Containers["api"]).Status, "exited")
			assert.Equal(t, state(t, c, rep.Containers["rethinkdb"]).Status, "running")
			assert.Equal(t, state(t, c, rep.Containers["registry"]).Status, "running")
			c.Start(t, rep.ID, "api")
			st := state(t, c, rep.Containers["api"])
			assert.Equal(t, st.Status, "running")
			assert.Equal(t, st.Health.Status, "healthy")
		})

		t.Run("health", func(t *testing.T) {
			rep := c.Replicas[2]
			c.SetUnhealthy(t, rep.ID, "api", true)
			assert.Equal(t, state(t, c, rep.Containers["api"]).Health.Status, "unhealthy")
			assert.Equal(t, state(t, c, rep.Containers["api"]).Status, "running")
			assert.Equal(t, state(t, c, c.Replicas[0].Containers["api"]).Health.Status, "healthy")
			c.SetUnhealthy(t, rep.ID, "api", false)
			assert.Equal(t, state(t, c, rep.Containers["api"]).Health.Status, "healthy")
		})

		// Two of three servers cut off: the third's tables stop taking
		// writes, as DTR's do without a majority; back on dtr-ol, they
		// take them again.
		t.Run("majority lost", func(t *testing.T) {
			lost, kept := c.Replicas[:2], c.Replicas[2]
			c.Replicate(t)
			for _, rep := range lost {
				c.Disconnect(t, rep.ID)
			}
			sess := c.Connect(t, kept.ID)
			assert.Assert(t, c.WaitMajorityLost(t, kept.ID) > 0)
			_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "no-majority"}).RunWrite(sess)
			assert.ErrorContains(t, err, "primary replica")
			for _, rep := range lost {
				c.Reconnect(t, rep.ID)
			}
			_, err = r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "majority-back"}).RunWrite(sess)
			assert.NilError(t, err)
			for _, rep := range c.Replicas {
				var n int
				assert.NilError(t, r.DB("dtr2").Table("properties").Count().ReadOne(&n, c.Connect(t, rep.ID)))
				assert.Equal(t, n, 3, rep.ID)
			}
		})
	})

	// The subtest's cleanup has run: nothing labelled is left but the images.
	assert.NilError(t, err)
	assertNothingLabelled(t, cli)
}

// assertNothingLabelled checks that no container, volume or network of the
// fixture is left.
func assertNothingLabelled(t *testing.T, cli *client.Client) {
	t.Helper()
	ctx := context.Background()
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter()})
	assert.NilError(t, err)
	assert.Check(t, is.Len(cs, 0))
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: labelFilter()})
	assert.NilError(t, err)
	assert.Check(t, is.Len(vs.Volumes, 0))
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: labelFilter()})
	assert.NilError(t, err)
	assert.Check(t, is.Len(ns, 0))
}

// TestVersionFromImageTag: a one-replica cluster with another version,
// without DTR_VERSION, and components given without rethinkdb.
func TestVersionFromImageTag(t *testing.T) {
	c := Start(t, Options{Replicas: 1, Version: "2.8.1", Components: []string{"registry"}, NoVersionEnv: true})
	rep := c.Replicas[0]
	assert.DeepEqual(t, rep.Containers, map[string]string{
		"rethinkdb": "dtr-rethinkdb-" + rep.ID,
		"registry":  "dtr-registry-" + rep.ID,
	})
	for comp, name := range rep.Containers {
		ci, err := c.Client.ContainerInspect(context.Background(), name)
		assert.NilError(t, err)
		assert.Equal(t, ci.Config.Image, imageName(comp, "2.8.1"))
		for _, e := range ci.Config.Env {
			assert.Assert(t, !strings.HasPrefix(e, "DTR_VERSION="), "%s: %s", name, e)
		}
	}
	assert.Equal(t, imageName("rethinkdb", "2.8.1"), "dtrfixture/dtr-rethink:2.8.1")
	sess := c.Connect(t, rep.ID)
	var s string
	assert.NilError(t, r.Expr("ok").ReadOne(&s, sess))
}

func state(t *testing.T, c *Cluster, name string) *container.State {
	t.Helper()
	ci, err := c.Client.ContainerInspect(context.Background(), name)
	assert.NilError(t, err)
	return ci.State
}

func checkReplica(t *testing.T, c *Cluster, rep *Replica) {
	t.Helper()
	ctx := context.Background()
	assert.Assert(t, replicaIDPattern.MatchString(rep.ID), rep.ID)
	assert.Equal(t, len(rep.Containers), len(DefaultComponents))
	wantMounts := map[string]map[string]string{ // component -> destination -> volume
		"rethinkdb": {"/ca": "dtr-ca-" + rep.ID, "/data": "dtr-rethink-" + rep.ID},
		"registry":  {"/ca": "dtr-ca-" + rep.ID, "/storage": "dtr-registry-" + rep.ID},
		"api":       {"/ca": "dtr-ca-" + rep.ID},
	}
	for _, comp := range DefaultComponents {
		name := rep.Containers[comp]
		assert.Equal(t, name, "dtr-"+comp+"-"+rep.ID)
		ci, err := c.Client.ContainerInspect(ctx, name)
		assert.NilError(t, err)
		assert.Equal(t, ci.State.Status, "running", name)
		assert.Equal(t, ci.Config.Labels[Label], "fixture")
		assert.Equal(t, ci.Config.Labels["com.docker.compose.project"], "Docker Trusted Registry 2.9.4 - (Replica "+rep.ID+")")
		assert.Equal(t, ci.Config.Labels["com.docker.compose.service"], comp)
		assert.Assert(t, slices.Contains(ci.Config.Env, "DTR_VERSION=2.9.4"), "%v", ci.Config.Env)
		want := "dtrfixture/dtr-" + comp + ":2.9.4"
		if comp == "rethinkdb" {
			want = "dtrfixture/dtr-rethink:2.9.4"
		}
		assert.Equal(t, ci.Config.Image, want)
		ep := ci.NetworkSettings.Networks["dtr-ol"]
		assert.Assert(t, ep != nil, "%s is not on dtr-ol", name)
		assert.Assert(t, slices.Contains(ep.Aliases, name), "%v", ep.Aliases)
		mounts := map[string]string{}
		for _, m := range ci.Mounts {
			mounts[m.Destination] = m.Name
		}
		assert.DeepEqual(t, mounts, wantMounts[comp])
		if comp == "api" {
			assert.Equal(t, ci.State.Health.Status, "healthy")
		} else {
			assert.Assert(t, ci.State.Health == nil, name)
		}
	}

	ci, err := c.Client.ContainerInspect(ctx, rep.Containers["rethinkdb"])
	assert.NilError(t, err)
	// DTR's flags; the others join the first.
	want := []string{"--bind", "all", "--directory", "/data/rethink", "--no-http-admin",
		"--server-name", "dtr_rethinkdb_" + rep.ID, "--canonical-address", "dtr-rethinkdb-" + rep.ID + ".dtr-ol",
		"--driver-tls-key", "/ca/rethink-client/key.pem", "--driver-tls-cert", "/ca/rethink-client/cert.pem",
		"--driver-tls-ca", "/ca/rethink/cert.pem"}
	if first := c.Replicas[0]; first != rep {
		want = append(want, "--join", "dtr-rethinkdb-"+first.ID+".dtr-ol:29015")
	}
	assert.DeepEqual(t, []string(ci.Config.Cmd), want)
	base, _, err := rethinkserver.EnsureImage(ctx, c.Client)
	assert.NilError(t, err)
	img, err := c.Client.ImageInspect(ctx, base)
	assert.NilError(t, err)
	assert.Equal(t, ci.Image, img.ID, "the real server's image, under the fixture's name")
	bindings := ci.NetworkSettings.Ports["28015/tcp"]
	assert.Equal(t, len(bindings), 1)
	assert.Equal(t, "127.0.0.1:"+bindings[0].HostPort, rep.RethinkAddr)

	for path, mode := range map[string]os.FileMode{
		"/ca/rethink/cert.pem": 0o644, "/ca/rethink/key.pem": 0o600,
		"/ca/rethink-client/cert.pem": 0o644, "/ca/rethink-client/key.pem": 0o600,
	} {
		st, err := c.Client.ContainerStatPath(ctx, rep.Containers["api"], path)
		assert.NilError(t, err, path)
		assert.Equal(t, st.Mode.Perm(), mode, path)
	}
}

// runOnNetwork runs dtrfake with args in a throwaway container on dtr-ol and
// returns its exit code and output.
func runOnNetwork(t *testing.T, c *Cluster, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.Client.ContainerCreate(ctx,
		&container.Config{Image: imageName("api", c.Version), Cmd: args, Labels: labels()},
		nil,
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"dtr-ol": {}}},
		nil, "")
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
	rc, err := c.Client.ContainerLogs(ctx, resp.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	assert.NilError(t, err)
	defer rc.Close()
	var out strings.Builder
	_, err = stdcopy.StdCopy(&out, &out, rc)
	assert.NilError(t, err)
	return code, out.String()
}
