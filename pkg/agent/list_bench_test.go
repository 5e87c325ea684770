package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// registryTree writes a registry-shaped volume of n blobs as distribution's
// filesystem driver lays them out, the shape of the e2e image benchmarks'
// generated volume (e2e genImageVolume): blobs/sha256/<xx>/<digest>/data,
// and a _layers link per blob in one of eight repositories. Four entries a
// blob: 8,019 blobs make the 32,343 entries of docs/benchmarks.md section
// 9. The files are small: a listing stats, it reads nothing.
func registryTree(tb testing.TB, dir string, n int) {
	tb.Helper()
	v2 := filepath.Join(dir, "docker", "registry", "v2")
	for i := range n {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		d := hex.EncodeToString(sum[:])
		blob := filepath.Join(v2, "blobs", "sha256", d[:2], d)
		link := filepath.Join(v2, "repositories", fmt.Sprintf("team%d", i%8), "app", "_layers", "sha256", d)
		for _, p := range []string{blob, link} {
			assert.NilError(tb, os.MkdirAll(p, 0o755))
		}
		assert.NilError(tb, os.WriteFile(filepath.Join(blob, "data"), sum[:1+i%32], 0o644))
		assert.NilError(tb, os.WriteFile(filepath.Join(link, "link"), []byte("sha256:"+d), 0o644))
	}
}

// benchBlobs is DTR_BENCH_BLOBS, or the 8,019 blobs of section 9.
func benchBlobs(b *testing.B) int {
	n := 8019
	if s := os.Getenv("DTR_BENCH_BLOBS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("DTR_BENCH_BLOBS=%q: give a whole number of blobs (1 or more)", s)
		}
	}
	return n
}

// BenchmarkList is the agent's listing of a registry-shaped volume (what
// an incremental image backup waits for before it chooses), against its
// limit in the same run: GNU find printing the same stat fields of every
// entry (`find DIR -printf '%s %T@ %m\n'`), a C walk that reads each
// directory and stats each entry relative to it. Each iteration runs
// both, alternating which goes first; ratio is ours over find's.
//
//	go test -run '^$' -bench 'List$' -benchtime 10x ./pkg/agent
func BenchmarkList(b *testing.B) {
	find, err := exec.LookPath("find")
	if err != nil {
		b.Skip("no find for the limit")
	}
	dir := filepath.Join(b.TempDir(), "storage")
	registryTree(b, dir, benchBlobs(b))
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	assert.NilError(b, err)
	defer null.Close()
	limit := func() time.Duration {
		start := time.Now()
		cmd := exec.Command(find, dir, "-printf", `%s %T@ %m\n`)
		cmd.Stdout = null
		assert.NilError(b, cmd.Run())
		return time.Since(start)
	}
	ours := func() time.Duration {
		start := time.Now()
		assert.NilError(b, List(dir, io.Discard))
		return time.Since(start)
	}
	// Warm the page cache and the dentries: both walks find them warm.
	limit()
	ours()
	b.ResetTimer()
	var tOurs, tLimit time.Duration
	for i := range b.N {
		if i%2 == 0 {
			tOurs += ours()
			tLimit += limit()
		} else {
			tLimit += limit()
			tOurs += ours()
		}
	}
	b.StopTimer()
	b.ReportMetric(tOurs.Seconds()/float64(b.N), "s/list")
	b.ReportMetric(tLimit.Seconds()/float64(b.N), "s/find")
	b.ReportMetric(float64(tOurs)/float64(tLimit), "ratio")
}
