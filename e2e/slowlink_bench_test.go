package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/klauspost/compress/zstd"
	"gotest.tools/v3/assert"
)

// BenchmarkSlowLink measures `backup create` and `backup restore` through
// the Docker context when the Docker API is a slow link, as it is from an
// operator's workstation to a remote UCP (issue 22): the engine proxy of
// the fault tests carries every byte at 10 MB/s each way, each chunk 5 ms
// late each way (DTR_BENCH_LINK_MBPS, DTR_BENCH_LINK_DELAY). The replica
// runs only the real RethinkDB, with generated DTR-shaped rows
// (DTR_BENCH_ROWS, 20,000 by default).
//
// Reported: each command's seconds, the bytes that crossed the proxy (both
// ways) per byte of documents, and the limit: the time the link needs for
// the archive compressed with zstd's default level, the least a backup or
// restore through it must carry, against the command's time (1 would be
// the link's speed). The first create through the proxy (it may fill the
// node's agent cache) is reported apart and not measured.
//
//	go test -run '^$' -bench SlowLink -benchtime 2x -timeout 30m ./e2e
func BenchmarkSlowLink(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{}})
	rows := benchEnvInt(b, "DTR_BENCH_ROWS", 20000)
	rate := float64(benchEnvInt(b, "DTR_BENCH_LINK_MBPS", 10)) * 1e6
	delay := 5 * time.Millisecond
	if v := os.Getenv("DTR_BENCH_LINK_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		assert.NilError(b, err, "DTR_BENCH_LINK_DELAY")
		delay = d
	}
	mb, gen := newMetadataBench(b, cfg, c, rows)
	docs := float64(gen.Bytes)
	least := zstdSize(b, mb.input)
	b.Logf("%d rows, %.1f MB of documents; archive %.1f MB, %.1f MB with zstd; link %.0f MB/s, %s each way",
		gen.Rows, docs/1e6, float64(fileSize(b, mb.input))/1e6, float64(least)/1e6, rate/1e6, delay)

	p := newEngineProxy(b)
	p.Throttle(rate, delay)
	via := func(args ...string) (time.Duration, int64) {
		before := p.Up() + p.Down()
		cmd := exec.Command(mb.bin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Host(), "DOCKER_CONTEXT=")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		assert.NilError(b, err, "%v: %s", args, out)
		return took, p.Up() + p.Down() - before
	}
	out := filepath.Join(mb.dir, "backup.tar")
	create := []string{"backup", "create", "-q", "-o", out}
	restore := []string{"backup", "restore", "-q", "--yes", "--no-safety-backup", mb.input}
	first, firstBytes := via(create...)
	b.Logf("first create through the link: %.2fs, %.1f MB across it", first.Seconds(), float64(firstBytes)/1e6)

	var createTime, restoreTime time.Duration
	var createBytes, restoreBytes int64
	b.ResetTimer()
	alternate(b.N,
		func() { d, n := via(create...); createTime += d; createBytes += n },
		func() { d, n := via(restore...); restoreTime += d; restoreBytes += n },
	)
	b.StopTimer()
	n := float64(b.N)
	limit := float64(least) / rate // seconds
	b.ReportMetric(createTime.Seconds()/n, "create-s")
	b.ReportMetric(restoreTime.Seconds()/n, "restore-s")
	b.ReportMetric(float64(createBytes)/n/docs, "create-bytes/doc-byte")
	b.ReportMetric(float64(restoreBytes)/n/docs, "restore-bytes/doc-byte")
	b.ReportMetric(limit/(createTime.Seconds()/n), "create-link-limit/time")
	b.ReportMetric(limit/(restoreTime.Seconds()/n), "restore-link-limit/time")
	b.Logf("per run: create %.2fs (%.1f MB across the link), restore %.2fs (%.1f MB); the link's limit %.2fs",
		createTime.Seconds()/n, float64(createBytes)/n/1e6, restoreTime.Seconds()/n, float64(restoreBytes)/n/1e6, limit)
}

// benchEnvInt is the integer in the environment variable, or def.
func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	assert.NilError(b, err, name)
	return n
}

// zstdSize is the size of the file compressed with zstd's default level.
func zstdSize(b *testing.B, path string) int64 {
	data, err := os.ReadFile(path)
	assert.NilError(b, err)
	enc, err := zstd.NewWriter(nil)
	assert.NilError(b, err)
	defer enc.Close()
	return int64(len(enc.EncodeAll(data, nil)))
}
