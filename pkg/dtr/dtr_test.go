package dtr

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want parsedName
		ok   bool
	}{
		{"/dtr-rethinkdb-0123456789ab", parsedName{"", "rethinkdb", "0123456789ab", "dtr-rethinkdb-0123456789ab"}, true},
		{"/node3/dtr-api-0123456789ab", parsedName{"node3", "api", "0123456789ab", "dtr-api-0123456789ab"}, true},
		{"node3/dtr-notary-server-000000000000", parsedName{"node3", "notary-server", "000000000000", "dtr-notary-server-000000000000"}, true},
		{"/ip-10-0-0-1.ec2.internal/dtr-nginx-a1b2c3d4e5f6", parsedName{"ip-10-0-0-1.ec2.internal", "nginx", "a1b2c3d4e5f6", "dtr-nginx-a1b2c3d4e5f6"}, true},
		{"/dtr-rethinkdb-0123456789AB", parsedName{}, false},  // upper case is not an id
		{"/dtr-rethinkdb-0123456789abc", parsedName{}, false}, // 13 hex
		{"/docker-dtr-tunnel-0123456789ab", parsedName{}, false},
		{"/a/b/dtr-api-0123456789ab", parsedName{}, false},
		{"/dtr-phase2", parsedName{}, false},
	} {
		got, ok := parseName(tc.in)
		assert.Equal(t, ok, tc.ok, tc.in)
		assert.DeepEqual(t, got, tc.want)
	}
}

func TestVersionFromImage(t *testing.T) {
	for in, want := range map[string]string{
		"docker/dtr-rethink:2.9.4":                       "2.9.4",
		"mirantis/dtr-api:2.9.16":                        "2.9.16",
		"registry.example.com:5000/docker/dtr-api:2.7.8": "2.7.8",
		"registry.example.com:5000/docker/dtr-api":       "",
		"docker/dtr-api:latest":                          "",
		"docker/dtr-api:2.8.2@sha256:0123":               "2.8.2",
		"sha256:4f2a":                                    "",
	} {
		assert.Equal(t, versionFromImage(in), want, in)
	}
	assert.Equal(t, versionFromEnv([]string{"PATH=/bin", "DTR_VERSION=2.9.4"}), "2.9.4")
	assert.Equal(t, versionFromEnv([]string{"PATH=/bin"}), "")
}

func replica(id string, containers ...Container) *Replica {
	r := &Replica{ID: id, Containers: containers}
	r.settle()
	return r
}

func running(component string) Container {
	return Container{Component: component, State: "running", Version: "2.9.4", Mounts: map[string]Mount{}}
}

func TestHealthAndChoice(t *testing.T) {
	sick := running("api")
	sick.Health = "unhealthy"
	stopped := running("registry")
	stopped.State = "exited"
	c := &Cluster{Replicas: []*Replica{
		replica("0000000000aa", running("rethinkdb"), sick),
		replica("0000000000bb", running("rethinkdb"), running("api")),
		replica("0000000000cc", running("rethinkdb"), stopped),
		replica("0000000000dd", running("api")),
	}}
	assert.Assert(t, !c.Replicas[0].Healthy)
	assert.DeepEqual(t, c.Replicas[0].Problems, []string{"api is unhealthy"})
	assert.DeepEqual(t, c.Replicas[2].Problems, []string{"registry is exited"})
	assert.DeepEqual(t, c.Replicas[3].Problems, []string{"no dtr-rethinkdb-0000000000dd container"})
	assert.DeepEqual(t, c.Healthy(), []string{"0000000000bb"})
	assert.DeepEqual(t, c.Quorum(), Quorum{Replicas: 4, Healthy: 1, Needed: 3, OK: false})

	r, err := c.Choose("")
	assert.NilError(t, err)
	assert.Equal(t, r.ID, "0000000000bb", "the healthy replica with the lowest id")
	_, err = c.Choose("0000000000aa")
	assert.Error(t, err, "replica 0000000000aa is not healthy (api is unhealthy): healthy replicas: 0000000000bb")
	_, err = c.Choose("0000000000ee")
	assert.Assert(t, is.ErrorContains(err, "replica 0000000000ee not found: this DTR's replicas are 0000000000aa (api is unhealthy), 0000000000bb (healthy)"))

	c.Replicas[1].Containers[0].State = "exited"
	c.Replicas[1].settle()
	_, err = c.Choose("")
	assert.Assert(t, is.ErrorContains(err, "no healthy DTR replica: "))
}

func TestQuorum(t *testing.T) {
	for _, tc := range []struct{ n, healthy, needed int }{{1, 1, 1}, {2, 2, 2}, {3, 2, 2}, {4, 3, 3}, {5, 3, 3}} {
		c := &Cluster{}
		for i := range tc.n {
			r := replica(string(rune('a'+i))+"00000000000", running("rethinkdb"))
			if i >= tc.healthy {
				r.Containers[0].State = "exited"
				r.settle()
			}
			c.Replicas = append(c.Replicas, r)
		}
		q := c.Quorum()
		assert.Equal(t, q.Needed, tc.needed)
		assert.Assert(t, q.OK, "%d of %d", tc.healthy, tc.n)
		c.Replicas[0].Containers[0].State = "exited"
		c.Replicas[0].settle()
		assert.Assert(t, !c.Quorum().OK, "%d of %d", tc.healthy-1, tc.n)
	}
}

func TestVersionsAndStorage(t *testing.T) {
	reg := running("registry")
	reg.Mounts["/storage"] = Mount{Type: "volume", Name: "dtr-registry-nfs-0000000000aa", Driver: "local"}
	a := replica("0000000000aa", running("rethinkdb"), reg)
	old := running("rethinkdb")
	old.Version = "2.9.3"
	b := replica("0000000000bb", old, running("registry"))
	c := &Cluster{Replicas: []*Replica{a, b}}
	assert.Equal(t, a.ImageStorage.Name, "dtr-registry-nfs-0000000000aa")
	assert.Assert(t, b.ImageStorage == nil, "no volume at /storage: external storage")
	assert.Assert(t, is.Contains(b.Problems, "containers of different versions: 2.9.3, 2.9.4"))
	assert.Equal(t, b.Version, "2.9.3", "the rethinkdb container's version")
	assert.Equal(t, c.VersionSkew(), "replicas run different DTR versions: 2.9.3 (0000000000bb); 2.9.4 (0000000000aa)")
	assert.Equal(t, a.CAVolume(), "dtr-ca-0000000000aa")
}
