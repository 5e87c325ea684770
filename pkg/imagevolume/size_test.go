package imagevolume

import (
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/mount"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"gotest.tools/v3/assert"
)

// The measuring helper is the wipe helper with the volume read-only and
// the agent told to walk it.
func TestSizeConfig(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node3", NodeFromName: true}
	v := &Volume{Replica: rep, Name: "dtr-registry-0123456789ab", Image: "sha256:reg"}
	img := &dockerspec.DockerOCIImageConfig{}
	img.Volumes = map[string]struct{}{"/storage": {}, "/var/cache": {}}
	cfg, host := v.agentConfig(img, sizeJob)

	assert.Equal(t, cfg.Image, "sha256:reg")
	assert.DeepEqual(t, []string(cfg.Entrypoint), []string{"/docker-dtr-agent"})
	assert.DeepEqual(t, []string(cfg.Cmd), []string{"agent", "--du", "/storage"})
	assert.DeepEqual(t, cfg.Env, []string{"constraint:node==node3"})
	assert.DeepEqual(t, cfg.Labels, helpercontainer.Labels(helpercontainer.KindImages, "0123456789ab"))
	assert.Check(t, host.AutoRemove, "the helper removes itself once the agent exits")
	assert.Equal(t, string(host.NetworkMode), "none")
	assert.Equal(t, host.LogConfig.Type, "none")
	assert.DeepEqual(t, host.Mounts, []mount.Mount{
		{Type: mount.TypeVolume, Source: "dtr-registry-0123456789ab", Target: "/storage", ReadOnly: true},
		{Type: mount.TypeTmpfs, Target: "/var/cache"},
	})
	// The wipe helper's is not: the job's arguments are its own.
	_, host = v.wipeConfig(img)
	assert.Assert(t, !host.Mounts[0].ReadOnly)
	assert.DeepEqual(t, sizeJob.args, []string{"--du", "/storage"})
}
