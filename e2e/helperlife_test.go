package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A helper never outlives its plugin, and a run that finds the helper of a
// run that is no longer alive removes it (issues 17 and 23). Each test
// SIGKILLs the plugin mid-run, through the Docker context, and checks:
//
//   - with nothing else run, the helper is gone within the agent's idle
//     bound, whether the engine saw the plugin's connection close (a kill
//     on this machine) or not (a laptop closed, a network dropped: the
//     holding proxy below keeps the engine's side of every connection);
//   - the next run of the same command removes a dead run's helper at once,
//     while a live run's helper (its plugin stopped for the moment, so that
//     it is sure to be there) is left alone, and that run then succeeds.

// helperGone is how long a killed run's helper may stay: the agent's idle
// bound, and time for the engine to stop and remove the container.
const helperGone = tunnel.IdleTimeout + 20*time.Second

func TestHelperLifeBackupCreate(t *testing.T) {
	rig := metadataRig(t)
	helperLife(t, rig, helpercontainer.KindDB)
}

func TestHelperLifeBackupImages(t *testing.T) {
	rig := imagesRig(t)
	helperLife(t, rig, helpercontainer.KindImages)

	// Where the agent cannot run on the node, `backup images` reads
	// through a helper that is never started (issue 17's leftover): the
	// next run here removes a killed run's at once, by its owner label.
	t.Run("never-started helper of a killed run", func(t *testing.T) {
		notELF := filepath.Join(t.TempDir(), "docker-dtr-darwin")
		assert.NilError(t, os.WriteFile(notELF, []byte("\xcf\xfa\xed\xfe not ELF"), 0o755))
		dir := t.TempDir()
		out := filepath.Join(dir, "backup.tar")
		b := rig.start(t, dir, out, runOptions{}, append(slices.Clone(rig.command), "--agent-binary", notELF, "-o", out)...)
		b.waitUnderWay(t, rig.underWay)
		h := helperOf(t, rig.c, b, helpercontainer.KindImages, "created")
		assert.NilError(t, b.cmd.Process.Kill())
		b.wait(t)
		// Nothing runs in it to notice: it stays.
		time.Sleep(2 * time.Second)
		state, ok := helperState(t, rig.c, h.ID)
		assert.Assert(t, ok, "the killed run's never-started helper %s", helperNameOf(h))
		assert.Equal(t, state, "created")

		next := docker(t, rig.cfg, nil, append(append([]string{"dtr"}, rig.command...), "-o", filepath.Join(t.TempDir(), "next.tar"))...)
		assert.Equal(t, next.code, 0, next.stderr)
		state, ok = helperState(t, rig.c, h.ID)
		assert.Check(t, !ok, "the killed run's never-started helper %s is still there (%s) after the next run", helperNameOf(h), state)
		rig.assertUnchanged(t)
	})
}

func helperLife(t *testing.T, rig *faultRig, kind string) {
	t.Run("SIGKILL", func(t *testing.T) {
		b := rig.startBackup(t, t.TempDir(), runOptions{})
		b.waitUnderWay(t, rig.underWay)
		h := helperOf(t, rig.c, b, kind, "running")
		assert.NilError(t, b.cmd.Process.Kill())
		b.wait(t)
		took := waitGone(t, rig.c, h, helperGone)
		t.Logf("the killed run's %s helper %s was gone %s after the kill", kind, helperNameOf(h), took.Round(time.Millisecond))
		rig.assertUnchanged(t)
	})

	t.Run("SIGKILL, the connection held open", func(t *testing.T) {
		p := newHoldingProxy(t)
		b := rig.startBackup(t, t.TempDir(), runOptions{env: []string{"DOCKER_HOST=" + p.Host()}})
		b.waitUnderWay(t, rig.underWay)
		h := helperOf(t, rig.c, b, kind, "running")
		assert.NilError(t, b.cmd.Process.Kill())
		b.wait(t)
		took := waitGone(t, rig.c, h, helperGone)
		t.Logf("the killed run's %s helper %s was gone %s after the kill, its connection held open (%d held)", kind, helperNameOf(h), took.Round(time.Millisecond), p.Held())
		rig.assertUnchanged(t)
	})

	t.Run("the next run removes a dead run's helper, not a live run's", func(t *testing.T) {
		// A live run, stopped while the others go: its plugin process is
		// alive, and its helper must stay.
		live := rig.startBackup(t, t.TempDir(), runOptions{})
		live.waitUnderWay(t, rig.underWay)
		liveHelper := helperOf(t, rig.c, live, kind, "running")
		assert.NilError(t, live.cmd.Process.Signal(syscall.SIGSTOP))
		stopped := time.Now()
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				live.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
		defer resume()

		// A dead run whose connections the engine still holds: its helper
		// would stay until the idle bound.
		p := newHoldingProxy(t)
		dead := rig.startBackup(t, t.TempDir(), runOptions{env: []string{"DOCKER_HOST=" + p.Host()}})
		dead.waitUnderWay(t, rig.underWay)
		deadHelper := helperOf(t, rig.c, dead, kind, "running")
		assert.NilError(t, dead.cmd.Process.Kill())
		dead.wait(t)
		killed := time.Now()

		// The next run, through the docker CLI and the context.
		dir := t.TempDir()
		next := docker(t, rig.cfg, nil, append(append([]string{"dtr"}, rig.command...), "-o", filepath.Join(dir, "next.tar"))...)
		assert.Equal(t, next.code, 0, next.stderr)
		nextTook := time.Since(killed)
		assert.Assert(t, nextTook < tunnel.IdleTimeout,
			"the next run took %s: past the idle bound, the dead run's helper could have gone by itself", nextTook)
		if leased(kind) {
			assert.Check(t, is.Contains(next.stderr, "removed the "+kind+" helper "+helperNameOf(deadHelper)))
			assert.Check(t, is.Contains(next.stderr, "is no longer alive"))
		}
		state, ok := helperState(t, rig.c, deadHelper.ID)
		assert.Check(t, !ok, "the dead run's helper %s is still there (%s) after the next run (%s after the kill)", helperNameOf(deadHelper), state, nextTook)

		state, ok = helperState(t, rig.c, liveHelper.ID)
		assert.Assert(t, ok, "the live run's helper %s was removed", helperNameOf(liveHelper))
		assert.Check(t, is.Equal(state, "running"), "the live run's helper")
		assert.Assert(t, time.Since(stopped) < tunnel.IdleTimeout-5*time.Second,
			"the live run was stopped for %s: its helper would take it for gone", time.Since(stopped))
		resume()
		res := live.wait(t)
		assert.Equal(t, res.code, 0, "the live run, left alone, succeeds: %s", res.stderr)
		assert.NilError(t, os.Remove(res.out))
		rig.assertUnchanged(t)
	})
}

// helperOf is the helper of kind that run b made, in state.
func helperOf(t *testing.T, c *dtrfixture.Cluster, b *pluginRun, kind, state string) container.Summary {
	t.Helper()
	pid := strconv.Itoa(b.cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, h := range helperContainers(t, c) {
			owner := strings.Split(h.Labels[helpercontainer.LabelOwner], ":")
			if h.Labels[helpercontainer.LabelKind] == kind && h.State == state && len(owner) > 2 && owner[len(owner)-2] == pid {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s helper of pid %s: %+v; stderr: %s", state, kind, pid, helperContainers(t, c), b.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func helperNameOf(h container.Summary) string { return strings.TrimPrefix(h.Names[0], "/") }

// waitGone waits until the container no longer exists, and says how long
// that took; still there after within fails the test.
func waitGone(t *testing.T, c *dtrfixture.Cluster, h container.Summary, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		state, ok := helperState(t, c, h.ID)
		if !ok {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("helper %s is still there (%s) %s after its plugin was killed", helperNameOf(h), state, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// helperState is the container's state, and whether it exists. It lists
// rather than inspects: an inspect waits for the container's lock, which
// an archive copy holds while it streams (a stopped run's copy, for one).
func helperState(t *testing.T, c *dtrfixture.Cluster, id string) (string, bool) {
	t.Helper()
	list, err := c.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
	assert.NilError(t, err)
	if len(list) == 0 {
		return "", false
	}
	return list[0].State, true
}

// holdingProxy forwards connections to the engine's socket; when the
// plugin's side closes (it was killed), the engine's side stays open and
// what the engine sends is read and dropped, as when a laptop is closed or
// a network drops without a word to the engine.
type holdingProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	held int
}

func newHoldingProxy(t *testing.T) *holdingProxy {
	t.Helper()
	p := &holdingProxy{}
	p.ln = serveEngineProxy(t, "dtr-hold-", func(client, engine net.Conn) (down, up func()) {
		down = func() { // engine -> plugin, then into the void
			buf := make([]byte, 32<<10)
			toClient := true
			for {
				n, err := engine.Read(buf)
				if n > 0 && toClient {
					if _, werr := client.Write(buf[:n]); werr != nil {
						toClient = false
					}
				}
				if err != nil {
					return
				}
			}
		}
		up = func() { // plugin -> engine; the end is not passed on
			buf := make([]byte, 32<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					engine.Write(buf[:n])
				}
				if err != nil {
					p.mu.Lock()
					p.held++
					p.mu.Unlock()
					return
				}
			}
		}
		return down, up
	}, nil)
	return p
}

// serveEngineProxy listens on a unix socket in front of the engine's (a
// DOCKER_HOST for the plugin) and, for each connection, dials the engine
// and runs relay's two directions on goroutines of their own. At the
// test's end it runs stop (when set), closes every connection, waits for
// the relays and removes the socket.
func serveEngineProxy(t *testing.T, prefix string, relay func(client, engine net.Conn) (down, up func()), stop func()) net.Listener {
	t.Helper()
	upstream := engineSocket(t)
	dir, err := os.MkdirTemp("", prefix)
	assert.NilError(t, err)
	ln, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	assert.NilError(t, err)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			engine, err := net.Dial("unix", upstream)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			open = append(open, client, engine)
			mu.Unlock()
			down, up := relay(client, engine)
			wg.Add(2)
			go func() { defer wg.Done(); down() }()
			go func() { defer wg.Done(); up() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		if stop != nil {
			stop()
		}
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return ln
}

func (p *holdingProxy) Host() string { return "unix://" + p.ln.Addr().String() }

// Held is how many of the plugin's connections ended while the engine's
// side was kept open.
func (p *holdingProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}
