package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"gotest.tools/v3/assert"
)

// benchSeed is the seed of the generated metadata, as pkg/metadata's
// benchmarks use it: the same seed and rows give the same documents.
const benchSeed = 20_09_04

// BenchmarkMetadataThroughContext measures what the Docker context costs the
// metadata commands on the real RethinkDB: `backup create` and `backup
// restore` of the same DTR-shaped data (internal/dtrgen) on a one-replica
// fixture, each through the Docker context (the database helper next to
// RethinkDB, its frames over the attach stream) and directly to the RethinkDB port the fixture
// publishes (--rethinkdb-addr and its TLS flags: the limit), in the same run,
// the order reversed every other round. context/direct is the ratio of their
// throughputs (archive MB per second of the plugin's run); the absolute
// figures go beside it. The replica runs only RethinkDB, so a restore
// through the context stops and starts nothing that a direct one does not.
//
// Two variants: "shared", the plugin and the server on the same two cores;
// "pinned", the server's container (HostConfig.CpusetCpus) and the database
// helper on core 1 and the plugin under taskset -c 0: the plugin on another
// machine than the DTR node, as in the field. The engine, its docker-proxy
// (which carries the published port) and containerd stay unpinned.
//
//	go test -run '^$' -bench MetadataThroughContext -benchtime 3x ./e2e
//	DTR_BENCH_ROWS=328000 go test -run '^$' -bench MetadataThroughContext/pinned -benchtime 2x ./e2e
func BenchmarkMetadataThroughContext(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{}})
	rep := c.Replicas[0]
	// 100,000 rows by default (about 100 MB of documents): a restore of
	// them takes a while on the real server, and each run through the
	// context pays a helper's start and removal, a second or so.
	mb, _ := newMetadataBench(b, cfg, c, benchEnvInt(b, "DTR_BENCH_ROWS", 100000))

	b.Run("shared", func(b *testing.B) { mb.measure(b, "") })
	b.Run("pinned", func(b *testing.B) {
		if runtime.NumCPU() < 2 {
			b.Skip("pinning needs 2 cores")
		}
		if _, err := exec.LookPath("taskset"); err != nil {
			b.Skip("no taskset: ", err)
		}
		server, plugin := "1", "0"
		name := rep.Containers["rethinkdb"]
		setCPUs(b, c, name, server)
		defer setCPUs(b, c, name, fmt.Sprintf("0-%d", runtime.NumCPU()-1))
		info, err := c.Client.ContainerInspect(context.Background(), name)
		assert.NilError(b, err)
		assert.Equal(b, info.HostConfig.CpusetCpus, server)
		// The database helper runs on the DTR node, beside the server.
		pinned := pinHelpers(b, c, server, leased)
		mb.measure(b, plugin)
		b.Logf("database helpers pinned to core %s: %d", server, pinned.Load())
	})
}

// metadataBench is the fixture, the plugin and the backup a restore loads.
type metadataBench struct {
	c        *dtrfixture.Cluster
	bin, dir string
	direct   []string // the flags that reach RethinkDB without the context
	input    string
	size     int64 // of input, in bytes
	rows     int
}

// newMetadataBench generates rows in the fixture's one replica and backs
// them up directly: the input every restore loads (the generated tables,
// replaced by themselves each time). It returns the generator's counts.
func newMetadataBench(b *testing.B, cfg string, c *dtrfixture.Cluster, rows int) (*metadataBench, dtrgen.Stats) {
	b.Helper()
	rep := c.Replicas[0]
	began := time.Now()
	gen, err := dtrgen.Generate(context.Background(), c.Connect(b, rep.ID), dtrgen.Options{Rows: rows, Seed: benchSeed})
	assert.NilError(b, err)
	b.Logf("generated %d rows, %.1f MB of documents, in %s", gen.Rows, float64(gen.Bytes)/1e6, time.Since(began).Round(100*time.Millisecond))
	mb := &metadataBench{
		c: c, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), dir: b.TempDir(), rows: rows,
		direct: []string{"--dtr-version", dtrfixture.DefaultVersion, "--rethinkdb-addr", rep.RethinkAddr,
			"--rethinkdb-ca", c.CAFile, "--rethinkdb-cert", c.CertFile, "--rethinkdb-key", c.KeyFile,
			"--rethinkdb-server-name", "dtr-rethinkdb-" + rep.ID + ".dtr-ol"},
	}
	mb.input = filepath.Join(mb.dir, "input.tar")
	mb.run(b, "", slices.Concat([]string{"backup", "create", "-q", "-o", mb.input}, mb.direct)...)
	mb.size = fileSize(b, mb.input)
	return mb, gen
}

// run runs the plugin, under taskset -c cpus if cpus is set, and returns
// how long it took.
func (mb *metadataBench) run(b *testing.B, cpus string, args ...string) time.Duration {
	b.Helper()
	name := mb.bin
	if cpus != "" {
		name, args = "taskset", append([]string{"-c", cpus, mb.bin}, args...)
	}
	cmd := exec.Command(name, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	assert.NilError(b, err, "%s %v: %s", name, args, out)
	return took
}

// measure runs backup and restore, direct and through the context, b.N times
// each, and reports MB/s and the ratios.
func (mb *metadataBench) measure(b *testing.B, cpus string) {
	out := filepath.Join(mb.dir, "backup.tar")
	backup := []string{"backup", "create", "-q", "-o", out}
	restore := []string{"backup", "restore", "-q", "--yes", "--no-safety-backup"}
	var backupDirect, backupContext, restoreDirect, restoreContext time.Duration
	b.ResetTimer()
	alternate(b.N,
		func() { backupDirect += mb.run(b, cpus, slices.Concat(backup, mb.direct)...) },
		func() { backupContext += mb.run(b, cpus, backup...) },
		func() { restoreDirect += mb.run(b, cpus, slices.Concat(restore, mb.direct, []string{mb.input})...) },
		func() { restoreContext += mb.run(b, cpus, slices.Concat(restore, []string{mb.input})...) },
	)
	b.StopTimer()
	n := float64(b.N)
	size := float64(mb.size) / 1e6
	rate := func(d time.Duration) float64 { return size * n / d.Seconds() }
	b.ReportMetric(rate(backupContext), "backup-context-MB/s")
	b.ReportMetric(rate(backupDirect), "backup-direct-MB/s")
	b.ReportMetric(backupDirect.Seconds()/backupContext.Seconds(), "backup-context/direct")
	b.ReportMetric(rate(restoreContext), "restore-context-MB/s")
	b.ReportMetric(rate(restoreDirect), "restore-direct-MB/s")
	b.ReportMetric(restoreDirect.Seconds()/restoreContext.Seconds(), "restore-context/direct")
	b.ReportMetric(float64(mb.rows), "rows")
	b.ReportMetric(size, "archive-MB")
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()/n) }
	b.Logf("%d rows, %.1f MB archive; per run: backup direct %s, context %s; restore direct %s, context %s",
		mb.rows, size, sec(backupDirect), sec(backupContext), sec(restoreDirect), sec(restoreContext))
}

// setCPUs sets the cores a container may run on (docker update
// --cpuset-cpus), which its HostConfig then shows.
func setCPUs(b *testing.B, c *dtrfixture.Cluster, name, cpus string) {
	b.Helper()
	_, err := c.Client.ContainerUpdate(context.Background(), name, container.UpdateConfig{Resources: container.Resources{CpusetCpus: cpus}})
	assert.NilError(b, err, "pinning %s to cores %s", name, cpus)
}

// pinHelpers pins every helper the plugin creates from now until the
// benchmark ends whose kind (helpercontainer.LabelKind) which accepts to
// cpus, as it is created (before the plugin starts it, as a rule). It
// returns how many it pinned.
func pinHelpers(b *testing.B, c *dtrfixture.Cluster, cpus string, which func(kind string) bool) *atomic.Int64 {
	ctx, cancel := context.WithCancel(context.Background())
	msgs, errs := c.Client.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionCreate)),
		filters.Arg("label", helpercontainer.LabelKind),
	)})
	var pinned atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				if !which(m.Actor.Attributes[helpercontainer.LabelKind]) {
					continue
				}
				_, err := c.Client.ContainerUpdate(ctx, m.Actor.ID, container.UpdateConfig{Resources: container.Resources{CpusetCpus: cpus}})
				if err == nil {
					pinned.Add(1)
				} else if ctx.Err() == nil {
					// Gone already (a helper that lived less than the
					// event's way here), or not pinned: said, not hidden.
					b.Logf("helper %s (%s) not pinned: %v", m.Actor.Attributes["name"], m.Actor.Attributes[helpercontainer.LabelKind], err)
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	b.Cleanup(func() { cancel(); <-done })
	return &pinned
}
