package tunnel

import (
	"bytes"
	"io"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"gotest.tools/v3/assert"
)

func TestHelperConfig(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node3", NodeFromName: true, Containers: []dtr.Container{{
		Component: "rethinkdb", ID: "f00d", Name: "dtr-rethinkdb-0123456789ab", Mounts: map[string]dtr.Mount{"/ca": {Type: "volume", Name: "dtr-ca-0123456789ab"}},
	}}}
	img := &dockerspec.DockerOCIImageConfig{}
	img.Volumes = map[string]struct{}{"/data": {}, "/ca": {}}
	cfg, host := helperConfig(rep, "sha256:abc", img, dbJob(rep))

	assert.Equal(t, cfg.Image, "sha256:abc")
	assert.DeepEqual(t, []string(cfg.Entrypoint), []string{"/docker-dtr-agent"})
	assert.DeepEqual(t, []string(cfg.Cmd), []string{"agent", "--db", "dtr-rethinkdb-0123456789ab.dtr-ol:28015"})
	// UCP places it on the replica's node; nothing else is in the environment.
	assert.DeepEqual(t, cfg.Env, []string{"constraint:node==node3"})
	assert.DeepEqual(t, cfg.Healthcheck.Test, []string{"NONE"})
	assert.Assert(t, cfg.OpenStdin && cfg.StdinOnce, "the agent sees EOF when the plugin goes away")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelKind], "db")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelLease], helpercontainer.LeaseAgent, "its agent exits when the plugin goes")
	assert.Equal(t, cfg.Labels[helpercontainer.LabelOwner], helpercontainer.Self())
	assert.Check(t, host.AutoRemove, "the container goes with its agent")
	// RethinkDB's own network namespace: no network for the engine to set up.
	assert.Equal(t, string(host.NetworkMode), "container:f00d")
	assert.Equal(t, host.LogConfig.Type, "none")
	assert.DeepEqual(t, host.Mounts, []mount.Mount{
		{Type: mount.TypeVolume, Source: "dtr-ca-0123456789ab", Target: "/ca", ReadOnly: true},
		{Type: mount.TypeTmpfs, Target: "/tmp"},
		{Type: mount.TypeTmpfs, Target: "/data"},
	})

	// A plain engine: no node in the names, no constraint.
	rep.NodeFromName = false
	cfg, _ = helperConfig(rep, "sha256:abc", nil, dbJob(rep))
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

func dbJob(rep *dtr.Replica) job {
	o := DBJob(rep)
	return job{kind: o.Kind, prefix: o.Prefix, role: o.Role, args: o.Args, tmp: o.Tmp}
}
