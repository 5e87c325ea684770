package agentbin

import (
	"slices"
	"testing"

	"github.com/docker/docker/api/types/volume"
	"gotest.tools/v3/assert"
)

// TestOldCaches: a fill removes other agents' cache volumes for its
// architecture, but keeps the newest of them (on each node, through
// UCP), so that two plugins used in turn do not remove each other's.
func TestOldCaches(t *testing.T) {
	vol := func(name, digest, arch, created string) *volume.Volume {
		return &volume.Volume{Name: name, CreatedAt: created, Labels: map[string]string{LabelDigest: digest, LabelArch: arch}}
	}
	got := oldCaches([]*volume.Volume{
		vol("docker-dtr-agent-aaaa", "aaaa", "amd64", "2026-12-01T10:00:00Z"),
		vol("docker-dtr-agent-bbbb", "bbbb", "amd64", "2026-12-05T10:00:00Z"),
		vol("docker-dtr-agent-cccc", "cccc", "amd64", "2026-12-03T10:00:00+02:00"),
		vol("docker-dtr-agent-mine", "mine", "amd64", "2026-12-07T10:00:00Z"),
		vol("docker-dtr-agent-arm", "dddd", "arm64", "2026-11-01T10:00:00Z"),
		vol("n1/docker-dtr-agent-aaaa", "aaaa", "amd64", "2026-12-06T10:00:00Z"),
		vol("n1/docker-dtr-agent-bbbb", "bbbb", "amd64", "2026-12-05T10:00:00Z"),
		vol("n2/docker-dtr-agent-bbbb", "bbbb", "amd64", "2026-12-05T10:00:00Z"),
	}, "mine", "amd64")
	slices.Sort(got)
	assert.DeepEqual(t, got, []string{"docker-dtr-agent-aaaa", "docker-dtr-agent-cccc", "n1/docker-dtr-agent-bbbb"})
}
