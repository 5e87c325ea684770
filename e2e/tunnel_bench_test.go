package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
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
	// 100,000 rows by default (about 36 MB of documents); the helper's start
	// and removal are a constant second or so that more rows amortise.
	rows := 100000
	if v := os.Getenv("DTR_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		assert.NilError(b, err, "DTR_BENCH_ROWS")
		rows = n
	}
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
