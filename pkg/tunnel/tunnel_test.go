package tunnel

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/hashicorp/yamux"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// echoServer accepts connections and echoes what they send.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// agentPair runs the agent on one end of a pipe and returns a client
// session on the other, as the plugin has over the attach connection.
func agentPair(t *testing.T, target string) *yamux.Session {
	a, b := net.Pipe()
	var log bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- Serve(a, target, &log) }()
	sess, err := yamux.Client(b, muxConfig())
	assert.NilError(t, err)
	t.Cleanup(func() {
		sess.Close()
		b.Close()
		assert.NilError(t, <-done, "the agent returns cleanly when its stdio closes")
	})
	return sess
}

func TestAgentRelaysSeveralStreams(t *testing.T) {
	sess := agentPair(t, echoServer(t))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sess.OpenStream()
			assert.Check(t, err)
			defer s.Close()
			assert.Check(t, readStatus(s))
			data := make([]byte, 3<<20+i) // larger than a stream window
			rand.Read(data)
			go func() { s.Write(data) }()
			got := make([]byte, len(data))
			_, err = io.ReadFull(s, got)
			assert.Check(t, err)
			assert.Check(t, bytes.Equal(got, data), "stream %d came back intact", i)
		}()
	}
	wg.Wait()
}

func TestAgentReportsDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	sess := agentPair(t, addr)
	s, err := sess.OpenStream()
	assert.NilError(t, err)
	err = readStatus(s)
	assert.Assert(t, is.ErrorContains(err, "connection refused"))
}

func TestReadStatus(t *testing.T) {
	for in, want := range map[string]string{
		"ok\nrest":                            "",
		"error no route\n":                    "no route",
		"hello\n":                             `unexpected status from the agent: "hello"`,
		"ok":                                  "the agent closed the stream: EOF",
		"":                                    "the agent closed the stream: EOF",
		string(make([]byte, maxStatusLine+1)): "the agent's status line is too long",
	} {
		r := bytes.NewBufferString(in)
		err := readStatus(r)
		if want == "" {
			assert.NilError(t, err)
			assert.Equal(t, r.String(), "rest", "nothing past the line is read")
			continue
		}
		assert.Error(t, err, want)
	}
}

func TestHelperConfig(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node3", NodeFromName: true, Containers: []dtr.Container{{
		Component: "rethinkdb", Mounts: map[string]dtr.Mount{"/ca": {Type: "volume", Name: "dtr-ca-0123456789ab"}},
	}}}
	img := &dockerspec.DockerOCIImageConfig{}
	img.Volumes = map[string]struct{}{"/data": {}, "/ca": {}}
	cfg, host := helperConfig(rep, "sha256:abc", img, relayJob(rep))

	assert.Equal(t, cfg.Image, "sha256:abc")
	assert.DeepEqual(t, []string(cfg.Entrypoint), []string{"/docker-dtr-agent"})
	assert.DeepEqual(t, []string(cfg.Cmd), []string{"agent", "--connect", "dtr-rethinkdb-0123456789ab.dtr-ol:28015"})
	// UCP places it on the replica's node; nothing else is in the environment.
	assert.DeepEqual(t, cfg.Env, []string{"constraint:node==node3"})
	assert.DeepEqual(t, cfg.Healthcheck.Test, []string{"NONE"})
	assert.Assert(t, cfg.OpenStdin && cfg.StdinOnce, "the agent sees EOF when the plugin goes away")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelKind], "tunnel")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelLease], helpercontainer.LeaseAgent, "its agent exits when the plugin goes")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelOwner], helpercontainer.Self())
	assert.Check(t, host.AutoRemove, "the container goes with its agent")
	assert.Equal(t, string(host.NetworkMode), "dtr-ol")
	assert.Equal(t, host.LogConfig.Type, "none")
	assert.DeepEqual(t, host.Mounts, []mount.Mount{
		{Type: mount.TypeVolume, Source: "dtr-ca-0123456789ab", Target: "/ca", ReadOnly: true},
		{Type: mount.TypeTmpfs, Target: "/data"},
	})

	// A plain engine: no node in the names, no constraint.
	rep.NodeFromName = false
	cfg, _ = helperConfig(rep, "sha256:abc", nil, relayJob(rep))
	assert.Assert(t, cfg.Env == nil)
}

func TestDemux(t *testing.T) {
	var in bytes.Buffer
	w := stdcopy.NewStdWriter(&in, stdcopy.Stdout)
	e := stdcopy.NewStdWriter(&in, stdcopy.Stderr)
	w.Write([]byte("hello "))
	e.Write([]byte("agent: a warning\n"))
	w.Write([]byte("world"))
	var stderr bytes.Buffer
	got, err := io.ReadAll(&demux{r: &in, errw: &stderr})
	assert.NilError(t, err)
	assert.Equal(t, string(got), "hello world")
	assert.Equal(t, stderr.String(), "agent: a warning\n")

	in.Reset()
	w.Write([]byte("cut"))
	in.Truncate(in.Len() - 1)
	_, err = io.ReadAll(&demux{r: &in, errw: &stderr})
	assert.Error(t, err, "unexpected EOF")
	in.Reset()
	in.Write([]byte{1, 0, 0})
	_, err = io.ReadAll(&demux{r: &in, errw: &stderr})
	assert.Error(t, err, "attach stream: truncated frame header")
}
