//go:build linux

package metadata

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
)

// launchEnv turns the test binary into a launcher: it runs the command in
// its arguments after "--" and prints the command's peak RSS in KiB. The
// peak must come from a small parent: Go starts a child with vfork
// semantics (CLONE_VM), and on exec Linux folds the parent's high-water RSS
// into the child's ru_maxrss, so started from the benchmark itself (which
// holds the loaded data's batches) it would report the benchmark's RSS.
const launchEnv = "DTR_BENCH_LAUNCH_MAXRSS"

func init() {
	if os.Getenv(launchEnv) == "" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, launchEnv+"=") })
	err := cmd.Run()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && err == nil {
		fmt.Println(ru.Maxrss)
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "launch:", err)
	os.Exit(1)
}

// buildPlugin builds the real plugin binary (go build ./cmd/docker-dtr),
// or returns DTR_BENCH_PLUGIN, a binary built beforehand.
func buildPlugin(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("DTR_BENCH_PLUGIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "docker-dtr")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", bin, "./cmd/docker-dtr")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return bin
}

// BenchmarkDumpMemory measures the peak RSS of the plugin binary running
// `docker-dtr backup create --rethinkdb-addr … -o FILE` (mutual TLS, as
// DTR's) against real servers holding 1× and 10× the data (DTR_BENCH_ROWS
// and ten times that), and reports both and their ratio (goal: 1.2 or less;
// streaming everywhere). The servers run in processes of their own, so the
// figure is the plugin's own. ns/op is the two dumps together.
func BenchmarkDumpMemory(b *testing.B) {
	rows := benchRows(b)
	small := loadedWith(b, rows)
	large := loadedWith(b, 10*rows)
	bin := buildPlugin(b)
	dir := b.TempDir()
	smallSrv, largeSrv := small.start(b, ""), large.start(b, "")
	dump := func(srv *rethinkserver.Server) (rssKiB int64, took time.Duration) {
		out := filepath.Join(dir, "backup-metadata.tar")
		defer os.Remove(out)
		args := []string{"-test.run=^$", "--", bin, "backup", "create", "-q", "--rethinkdb-addr", srv.Addr,
			"--rethinkdb-ca", srv.Certs.CA, "--rethinkdb-cert", srv.Certs.ClientCert, "--rethinkdb-key", srv.Certs.ClientKey,
			"--rethinkdb-server-name", rethinkserver.ServerName, "--dtr-version", "2.9.4", "-o", out}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir, launchEnv+"=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		stdout, err := cmd.Output()
		if err != nil {
			b.Fatalf("backup create: %v\n%s", err, stderr.Bytes())
		}
		took = time.Since(start)
		kib, err := strconv.ParseInt(strings.TrimSpace(string(stdout)), 10, 64)
		if err != nil {
			b.Fatalf("launcher said %q: %v", stdout, err)
		}
		return kib, took // ru_maxrss is in KiB on Linux
	}
	var rss1, rss10 int64
	var t1, t10 time.Duration
	b.ResetTimer()
	for range b.N {
		r, t := dump(smallSrv)
		rss1, t1 = max(rss1, r), t1+t
		r, t = dump(largeSrv)
		rss10, t10 = max(rss10, r), t10+t
	}
	per := time.Duration(b.N)
	b.ReportMetric(float64(rss1)/1024, "rss-1x-MiB")
	b.ReportMetric(float64(rss10)/1024, "rss-10x-MiB")
	b.ReportMetric(float64(rss10)/float64(rss1), "ratio")
	b.ReportMetric(float64(small.stats.Rows)/(t1/per).Seconds(), "1x-rows/s")
	b.ReportMetric(float64(large.stats.Rows)/(t10/per).Seconds(), "10x-rows/s")
}
