package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"gotest.tools/v3/assert"
)

// BenchmarkBackupThroughTunnel measures what the tunnel costs: the same
// backup of the same replica, once through the Docker context (helper
// container, agent, multiplexed attach stream) and once directly to the
// RethinkDB port the fixture publishes (the limit). tunnel/direct is the
// ratio of their throughputs; both absolute figures go beside it.
func BenchmarkBackupThroughTunnel(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	const rows = 100000 // about 36 MB of documents
	seedEvents(b, c.Connect(b, rep.ID), rows)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	dir := b.TempDir()
	out := filepath.Join(dir, "backup.tar")

	runBackup := func(args ...string) time.Duration {
		cmd := exec.Command(bin, append([]string{"backup", "create", "-q", "-o", out}, args...)...)
		start := time.Now()
		output, err := cmd.CombinedOutput()
		elapsed := time.Since(start)
		assert.NilError(b, err, string(output))
		return elapsed
	}
	direct := []string{"--dtr-version", dtrfixture.DefaultVersion, "--rethinkdb-addr", rep.RethinkAddr,
		"--rethinkdb-ca", c.CAFile, "--rethinkdb-cert", c.CertFile, "--rethinkdb-key", c.KeyFile,
		"--rethinkdb-server-name", "dtr-rethinkdb-" + rep.ID + ".dtr-ol"}

	var viaTunnel, viaDirect time.Duration
	b.ResetTimer()
	for range b.N {
		viaDirect += runBackup(direct...)
		viaTunnel += runBackup()
	}
	b.StopTimer()
	st, err := os.Stat(out)
	assert.NilError(b, err)
	mb := float64(st.Size()) / 1e6 * float64(b.N)
	b.ReportMetric(mb/viaTunnel.Seconds(), "tunnel-MB/s")
	b.ReportMetric(mb/viaDirect.Seconds(), "direct-MB/s")
	b.ReportMetric(viaDirect.Seconds()/viaTunnel.Seconds(), "tunnel/direct")
	b.ReportMetric(float64(rows), "rows")
}

// BenchmarkImageBackup measures `backup images` against the limit it stands
// on: the same volume read through the archive API (what `docker cp` does)
// and thrown away, in the same run.
func BenchmarkImageBackup(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	dtrfixture.Push(b, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(b, c.Client, 3))
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	out := filepath.Join(b.TempDir(), "images.tar")
	ctx := context.Background()
	img := mustImageID(b, c, rep.Containers["registry"])

	var viaPlugin, viaCopy time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		cr, err := c.Client.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{dtrfixture.Label: "fixture"}},
			&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "dtr-registry-" + rep.ID, Target: "/storage", ReadOnly: true}}}, nil, nil, "")
		assert.NilError(b, err)
		rc, _, err := c.Client.CopyFromContainer(ctx, cr.ID, "/storage")
		assert.NilError(b, err)
		_, err = io.Copy(io.Discard, rc)
		assert.NilError(b, err)
		rc.Close()
		assert.NilError(b, c.Client.ContainerRemove(ctx, cr.ID, container.RemoveOptions{Force: true}))
		viaCopy += time.Since(start)

		start = time.Now()
		output, err := exec.Command(bin, "backup", "images", "-q", "-o", out).CombinedOutput()
		assert.NilError(b, err, string(output))
		viaPlugin += time.Since(start)
	}
	b.StopTimer()
	st, err := os.Stat(out)
	assert.NilError(b, err)
	mb := float64(st.Size()) / 1e6 * float64(b.N)
	b.ReportMetric(mb/viaPlugin.Seconds(), "plugin-MB/s")
	b.ReportMetric(mb/viaCopy.Seconds(), "archive-api-MB/s")
	b.ReportMetric(viaCopy.Seconds()/viaPlugin.Seconds(), "plugin/archive-api")
}
