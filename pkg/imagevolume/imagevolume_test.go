package imagevolume

import (
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/mount"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"gotest.tools/v3/assert"
)

func TestOf(t *testing.T) {
	reg := dtr.Container{Component: "registry", Name: "dtr-registry-0123456789ab", ImageID: "sha256:reg", State: "running",
		Mounts: map[string]dtr.Mount{"/storage": {Type: "volume", Name: "dtr-registry-nfs-0123456789ab", Driver: "local"}}}
	nginx := dtr.Container{Component: "nginx", State: "running", Mounts: map[string]dtr.Mount{"/storage": {Type: "volume", Name: "dtr-registry-nfs-0123456789ab"}}}
	api := dtr.Container{Component: "api", State: "running", Mounts: map[string]dtr.Mount{"/ca": {Type: "volume", Name: "dtr-ca-0123456789ab"}}}
	rep := &dtr.Replica{ID: "0123456789ab", Containers: []dtr.Container{api, nginx, reg},
		ImageStorage: &dtr.Mount{Type: "volume", Name: "dtr-registry-nfs-0123456789ab", Driver: "local"}}
	v, err := Of(rep)
	assert.NilError(t, err)
	assert.Equal(t, v.Name, "dtr-registry-nfs-0123456789ab", "found by mount point, whatever its name")
	assert.Equal(t, v.Image, "sha256:reg")
	var users []string
	for _, c := range v.Users() {
		users = append(users, c.Component)
	}
	assert.DeepEqual(t, users, []string{"nginx", "registry"})

	rep.ImageStorage = nil
	_, err = Of(rep)
	assert.ErrorContains(t, err, "replica 0123456789ab has no image volume (no volume at /storage on dtr-registry-0123456789ab): DTR stores its images in external storage (S3, Azure, GCS or Swift)")
	rep.ImageStorage = &dtr.Mount{Type: "bind", Source: "/var/lib/registry"}
	_, err = Of(rep)
	assert.ErrorContains(t, err, "host directory /var/lib/registry")
	rep.Containers = []dtr.Container{api}
	_, err = Of(rep)
	assert.ErrorContains(t, err, "has no dtr-registry-0123456789ab container")
}

func TestWipeConfig(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node3", NodeFromName: true}
	v := &Volume{Replica: rep, Name: "dtr-registry-0123456789ab", Image: "sha256:reg"}
	img := &dockerspec.DockerOCIImageConfig{}
	img.Volumes = map[string]struct{}{"/storage": {}, "/var/cache": {}}
	cfg, host := v.wipeConfig(img)

	assert.Equal(t, cfg.Image, "sha256:reg", "the registry's image, already on the node")
	assert.Equal(t, cfg.User, "0:0")
	assert.DeepEqual(t, []string(cfg.Entrypoint), []string{"/docker-dtr-agent"})
	assert.DeepEqual(t, []string(cfg.Cmd), []string{"agent", "--wipe", "/storage"})
	assert.DeepEqual(t, cfg.Env, []string{"constraint:node==node3"})
	assert.DeepEqual(t, cfg.Labels, helpercontainer.Labels(helpercontainer.KindImages, "0123456789ab"))
	assert.Check(t, host.AutoRemove, "the helper removes itself once the agent exits")
	assert.DeepEqual(t, cfg.Healthcheck.Test, []string{"NONE"})
	assert.Equal(t, string(host.NetworkMode), "none")
	assert.Equal(t, host.LogConfig.Type, "none")
	assert.DeepEqual(t, host.Mounts, []mount.Mount{
		{Type: mount.TypeVolume, Source: "dtr-registry-0123456789ab", Target: "/storage"},
		{Type: mount.TypeTmpfs, Target: "/var/cache"},
	})

	rep.NodeFromName = false
	cfg, _ = v.wipeConfig(nil)
	assert.Assert(t, cfg.Env == nil)
}

func TestRequestErr(t *testing.T) {
	cause := errors.New("interrupt signal received")
	err := &url.Error{Op: "Put", URL: "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/containers/abc/archive?path=%2Fstorage", Err: cause}
	assert.Equal(t, requestErr(fmt.Errorf("wrapped: %w", err)), cause)
	other := errors.New("Error response from daemon: No such container: abc")
	assert.Equal(t, requestErr(other), other)
}
