package metadata

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/rethinktest"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// The benchmarks of this package measure the plugin's metadata paths
// against a limit measured in the same run on the same data, and report
// both with their ratio: see docs/benchmarks.md.

// benchSeed makes every run's data the same.
const benchSeed = 20_09_04

// benchRows is the size of the generated data set: DTR_BENCH_ROWS, default
// 100,000 (a tenth of the million, to keep `make bench` short on a
// small machine).
func benchRows(b *testing.B) int {
	if v := os.Getenv("DTR_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("DTR_BENCH_ROWS=%q: expected a number of rows, at least 100", v)
		}
		return n
	}
	return 100_000
}

// benchParallel is the dump's Parallel: DTR_BENCH_PARALLEL, or the
// plugin's default.
func benchParallel(b *testing.B) int {
	if v := os.Getenv("DTR_BENCH_PARALLEL"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("DTR_BENCH_PARALLEL=%q: expected 1 or more", v)
		}
		return n
	}
	return DefaultParallel()
}

// loadedServer is a test server in a child process (its CPU and memory stay
// out of the measured process) holding a generated data set.
type loadedServer struct {
	proc  *rethinktest.Process
	stats dtrgen.Stats
	took  time.Duration
}

var (
	loadedMu sync.Mutex
	loaded   = map[int]*loadedServer{}
)

// loadedWith returns the server holding rows generated rows, generating
// them the first time: the runs of a benchmark (b.N = 1, then the rest) and
// the benchmarks share it. It lives as long as the test binary.
func loadedWith(b *testing.B, rows int) *loadedServer {
	b.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if ls := loaded[rows]; ls != nil {
		return ls
	}
	proc, err := rethinktest.Spawn(rethinktest.ProcessOptions{})
	if err != nil {
		b.Fatal(err)
	}
	driver, err := r.Connect(r.ConnectOpts{Address: proc.Addr(), MaxOpen: 8})
	if err != nil {
		proc.Kill()
		b.Fatal(err)
	}
	defer driver.Close()
	start := time.Now()
	st, err := dtrgen.Generate(context.Background(), driver, dtrgen.Options{Rows: rows, Seed: benchSeed})
	if err != nil {
		proc.Kill()
		b.Fatal(err)
	}
	ls := &loadedServer{proc: proc, stats: st, took: time.Since(start)}
	b.Logf("generated %d rows, %.1f MiB of documents, in %s", st.Rows, float64(st.Bytes)/(1<<20), ls.took.Round(time.Millisecond))
	loaded[rows] = ls
	return ls
}

func benchConnect(b *testing.B, addr string, conns int) *rethink.Session {
	b.Helper()
	s, err := rethink.Connect(context.Background(), rethink.Options{Addr: addr, Connections: conns})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// report adds ours and the limit as rows/s and MB/s, and their ratio
// (ours/limit in rows/s: above 1 is faster than the limit).
func report(b *testing.B, rows, bytes int64, ours, limit time.Duration) {
	b.Helper()
	mb := float64(bytes) / 1e6
	b.ReportMetric(float64(rows)/ours.Seconds(), "rows/s")
	b.ReportMetric(mb/ours.Seconds(), "MB/s")
	b.ReportMetric(float64(rows)/limit.Seconds(), "limit-rows/s")
	b.ReportMetric(mb/limit.Seconds(), "limit-MB/s")
	b.ReportMetric(limit.Seconds()/ours.Seconds(), "ratio")
}
