package metadata

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/cpupin"
	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// The benchmarks of this package measure the plugin's metadata paths
// against a limit measured in the same run on the same data, on the real
// RethinkDB 2.4 (internal/rethinkserver), and report both with their
// ratio: see docs/benchmarks.md.

func TestMain(m *testing.M) {
	code := m.Run()
	removeLoaded()
	os.Exit(code)
}

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

// loadedData is a data directory of the real RethinkDB holding a generated
// data set. Generating it takes the real server as long as a restore does,
// so it is done once per test binary and kept on disk: each run of a
// benchmark starts a server of its own on it (start), with the CPUs the
// run wants, and the benchmarks share it. TestMain removes it.
type loadedData struct {
	dir   string
	stats dtrgen.Stats
	took  time.Duration
}

var (
	loadedMu   sync.Mutex
	loaded     = map[int]*loadedData{}
	loadedRoot string
)

// removeLoaded deletes the generated data directories.
func removeLoaded() {
	if loadedRoot != "" {
		os.RemoveAll(loadedRoot)
	}
}

// loadedWith returns the data directory holding rows generated rows,
// generating it the first time.
func loadedWith(b *testing.B, rows int) *loadedData {
	b.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if ld := loaded[rows]; ld != nil {
		return ld
	}
	if src := rethinkserver.Require(b); src.Binary == "" {
		b.Skipf("the metadata benchmarks keep their data in a directory on the host, and %s runs the server in a container: "+
			"set %s to a rethinkdb binary or use ../shared/rethinkdb", src.From, rethinkserver.EnvBinary)
	}
	if loadedRoot == "" {
		var err error
		if loadedRoot, err = os.MkdirTemp("", "dtr-bench-rethinkdb-"); err != nil {
			b.Fatal(err)
		}
	}
	ld := &loadedData{dir: filepath.Join(loadedRoot, strconv.Itoa(rows))}
	srv := rethinkserver.Start(b, rethinkserver.Options{TLS: true, Directory: ld.dir})
	opts := srv.ConnectOpts()
	opts.MaxOpen = 8
	driver, err := r.Connect(opts)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ld.stats, err = dtrgen.Generate(context.Background(), driver, dtrgen.Options{Rows: rows, Seed: benchSeed})
	driver.Close()
	if err != nil {
		b.Fatal(err)
	}
	ld.took = time.Since(start)
	srv.Stop() // cleanly: everything on disk for the next start
	b.Logf("generated %d rows, %.1f MiB of documents, in %s", ld.stats.Rows, float64(ld.stats.Bytes)/(1<<20), ld.took.Round(time.Millisecond))
	loaded[rows] = ld
	return ld
}

// start runs a server on the data for the rest of this run of the
// benchmark, on cpus ("" for any), and reads every table once: a restarted
// server reads from disk what a running DTR's serves from its cache, and
// the first of ours and the limit would pay for it alone.
func (ld *loadedData) start(b *testing.B, cpus string) *rethinkserver.Server {
	b.Helper()
	srv := rethinkserver.Start(b, rethinkserver.Options{TLS: true, Directory: ld.dir, CPUs: cpus})
	// A restarted server takes its tables back one by one.
	var dbs []string
	driver := srv.Connect(b)
	if err := r.DBList().ReadAll(&dbs, driver); err != nil {
		b.Fatal(err)
	}
	for _, db := range dbs {
		if db != rethink.SystemDB {
			if _, err := r.DB(db).Wait(r.WaitOpts{WaitFor: "all_replicas_ready", Timeout: 60}).Run(driver); err != nil {
				b.Fatalf("waiting for the tables of %s: %v", db, err)
			}
		}
	}
	s := benchConnect(b, srv, 1)
	ctx := context.Background()
	refs, err := s.Tables(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, ref := range refs {
		if err := s.Scan(ctx, ref, func([]byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if n != ld.stats.Rows {
		b.Fatalf("the server holds %d rows of the %d generated", n, ld.stats.Rows)
	}
	return srv
}

// benchConnect opens a session to srv as the plugin does (mutual TLS, as
// DTR's server requires) with a pool of conns connections.
func benchConnect(b *testing.B, srv *rethinkserver.Server, conns int) *rethink.Session {
	b.Helper()
	s, err := rethink.Connect(context.Background(), rethinkOptions(srv, conns))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// rethinkOptions are the plugin's options for srv.
func rethinkOptions(srv *rethinkserver.Server, conns int) rethink.Options {
	o := rethink.Options{Addr: srv.Addr, Connections: conns}
	if srv.Certs != nil {
		o.CAFile, o.CertFile, o.KeyFile, o.ServerName = srv.Certs.CA, srv.Certs.ClientCert, srv.Certs.ClientKey, rethinkserver.ServerName
	}
	return o
}

// cpuMode is how the client (this process) and the server share the CPUs.
type cpuMode struct {
	name string
	// server is the server's cores ("" for any); client the one core of
	// this process (-1 for any).
	server string
	client int
}

// cpuModes measure each metadata figure twice: with the benchmark and the
// server sharing the CPUs, and with each on a core of its own, which is how
// the plugin meets a DTR node in the field (from another machine).
var cpuModes = []cpuMode{
	{name: "shared", server: "", client: -1},
	{name: "pinned", server: "1", client: 0},
}

// runModes runs fn as a sub-benchmark per cpuMode; pinned needs two CPUs.
func runModes(b *testing.B, fn func(b *testing.B, m cpuMode)) {
	for _, m := range cpuModes {
		b.Run(m.name, func(b *testing.B) {
			if m.client >= 0 && runtime.NumCPU() < 2 {
				b.Skip("one CPU: nothing to pin to")
			}
			fn(b, m)
		})
	}
}

// pinClient puts this process on the mode's core (every thread, and
// GOMAXPROCS 1, as a process started there would have) until the run ends.
func (m cpuMode) pinClient(b *testing.B) {
	b.Helper()
	if m.client < 0 {
		return
	}
	restore, err := cpupin.Process(m.client)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(restore)
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
