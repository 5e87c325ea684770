package restoretest

import (
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The throw-away server is the replica's RethinkDB but for its cluster,
// its data and its network: no --join, empty anonymous volumes, no
// network but its loopback, where DTR's name for it points.
func TestServerConfig(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node1", NodeFromName: true}
	orig := &dtr.Container{Component: "rethinkdb", Name: "dtr-rethinkdb-0123456789ab", ImageID: "sha256:img"}
	info := container.InspectResponse{
		Config: &container.Config{
			Entrypoint: []string{"rethinkdb"},
			Cmd:        []string{"--bind", "all", "--directory", "/data/rethink", "--join", "dtr-rethinkdb-aaaaaaaaaaaa.dtr-ol:29015", "--join=dtr-rethinkdb-bbbbbbbbbbbb.dtr-ol:29015", "--server-name", "dtr_rethinkdb_0123456789ab"},
			Env:        []string{"DTR_VERSION=2.9.4"},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "dtr-ca-0123456789ab", Destination: "/ca"},
			{Type: mount.TypeVolume, Name: "dtr-rethink-0123456789ab", Destination: "/data"},
		},
	}
	info.ContainerJSONBase = &container.ContainerJSONBase{}
	cfg, host := serverConfig(rep, orig, info)
	assert.Check(t, is.Equal(cfg.Image, "sha256:img"))
	assert.Check(t, is.DeepEqual([]string(cfg.Entrypoint), []string{"rethinkdb"}))
	assert.Check(t, is.DeepEqual([]string(cfg.Cmd), []string{"--bind", "all", "--directory", "/data/rethink", "--server-name", "dtr_rethinkdb_0123456789ab"}))
	assert.Check(t, is.DeepEqual(cfg.Env, []string{"DTR_VERSION=2.9.4", "constraint:node==node1"}))
	assert.Check(t, is.DeepEqual(info.Config.Env, []string{"DTR_VERSION=2.9.4"}), "the replica's own configuration is left as it is")
	assert.Check(t, is.Equal(cfg.Labels[helpercontainer.LabelKind], helpercontainer.KindRestoreTest))
	assert.Check(t, is.Equal(cfg.Labels[helpercontainer.LabelReplica], rep.ID))
	assert.Check(t, is.DeepEqual(cfg.Volumes, map[string]struct{}{"/data": {}}))
	assert.Check(t, is.Equal(string(host.NetworkMode), "none"))
	assert.Check(t, is.DeepEqual(host.ExtraHosts, []string{"dtr-rethinkdb-0123456789ab.dtr-ol:127.0.0.1"}))
	assert.Check(t, is.Len(host.PortBindings, 0))
	assert.Check(t, is.DeepEqual(host.Mounts, []mount.Mount{{Type: mount.TypeVolume, Source: "dtr-ca-0123456789ab", Target: "/ca", ReadOnly: true}}))
}
