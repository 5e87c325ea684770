package imagevolume

import (
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
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
