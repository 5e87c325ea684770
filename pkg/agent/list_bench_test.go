package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
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
// directory and stats each entry relative to it (see pair).
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
	pair(b, "list", func() { assert.NilError(b, List(dir, io.Discard)) },
		"find", func() *exec.Cmd {
			cmd := exec.Command(find, dir, "-printf", `%s %T@ %m\n`)
			cmd.Stdout = null
			return cmd
		})
}

// pair runs ours and the limit's command b.N times each, alternating
// which goes first, after one warming run of each (page cache, dentries),
// and reports their wall and CPU times and the ratios of ours over the
// limit's. The CPU ratio is the steadier on a loaded machine: the walk
// is system calls, which other processes' load stretches in wall time.
func pair(b *testing.B, name string, ours func(), limitName string, limit func() *exec.Cmd) {
	b.Helper()
	runOurs := func() (wall, cpu time.Duration) {
		before := selfCPU(b)
		start := time.Now()
		ours()
		return time.Since(start), selfCPU(b) - before
	}
	runLimit := func() (wall, cpu time.Duration) {
		cmd := limit()
		start := time.Now()
		assert.NilError(b, cmd.Run())
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	runOurs()
	runLimit()
	b.ResetTimer()
	var wOurs, cOurs, wLimit, cLimit time.Duration
	for i := range b.N {
		var w1, c1, w2, c2 time.Duration
		if i%2 == 0 {
			w1, c1 = runOurs()
			w2, c2 = runLimit()
		} else {
			w2, c2 = runLimit()
			w1, c1 = runOurs()
		}
		wOurs, cOurs, wLimit, cLimit = wOurs+w1, cOurs+c1, wLimit+w2, cLimit+c2
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(wOurs.Seconds()/n, "s/"+name)
	b.ReportMetric(wLimit.Seconds()/n, "s/"+limitName)
	b.ReportMetric(cOurs.Seconds()/n, "cpu-s/"+name)
	b.ReportMetric(cLimit.Seconds()/n, "cpu-s/"+limitName)
	b.ReportMetric(float64(wOurs)/float64(wLimit), "ratio")
	b.ReportMetric(float64(cOurs)/float64(cLimit), "cpu-ratio")
}

// selfCPU is this process's CPU time so far, user and system.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	assert.NilError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSend is the agent's whole part of an incremental image backup
// of a registry-shaped volume: the listing, then the tar of what is not
// left out (here 95 % of the blobs are left out, as in section 9's
// benchmark; the links and the other blobs are read), against GNU tar
// writing the whole volume to a pipe (`tar -cf - storage | cat >/dev/null`)
// in the same run (see pair).
//
//	go test -run '^$' -bench 'Send$' -benchtime 10x ./pkg/agent
func BenchmarkSend(b *testing.B) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		b.Skip("no tar for the limit")
	}
	parent := b.TempDir()
	dir := filepath.Join(parent, "storage")
	n := benchBlobs(b)
	registryTree(b, dir, n)
	var omit bytes.Buffer
	for i := range n {
		if i%20 == 0 {
			continue
		}
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		d := hex.EncodeToString(sum[:])
		fmt.Fprintf(&omit, "%d docker/registry/v2/blobs/sha256/%s/%s/data\n", 1+i%32, d[:2], d)
	}
	omit.WriteString("end\n")
	pair(b, "send", func() {
		in, w := io.Pipe()
		go w.Write(omit.Bytes()) // then silent, as a plugin between keepalives
		assert.NilError(b, Send(dir, in, io.Discard, time.Minute))
		w.Close()
	}, "tar", func() *exec.Cmd {
		cmd := exec.Command(tarBin, "-cf", "-", "-C", parent, "storage")
		cmd.Stdout = io.Discard // a pipe: GNU tar reads nothing for /dev/null
		return cmd
	})
}

// BenchmarkKeptMemory is what the send's list of the listing's entries
// holds per entry (the live heap after the listing, names included),
// against what the walk's own entries held when they were kept whole
// (the send's list before keptList), in the same run.
//
//	DTR_BENCH_BLOBS=52155 go test -run '^$' -bench 'KeptMemory$' -benchtime 1x ./pkg/agent
func BenchmarkKeptMemory(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "storage")
	registryTree(b, dir, benchBlobs(b))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var perKept, perWhole float64
	for range b.N {
		before := heap()
		kept := &keptList{}
		assert.NilError(b, list(dirTree(dir), io.Discard, func(w walked) { assert.Assert(b, kept.add(w)) }))
		kept.open = nil
		perKept = float64(heap()-before) / float64(len(kept.entries))
		runtime.KeepAlive(kept)

		before = heap()
		var whole []walked
		assert.NilError(b, list(dirTree(dir), io.Discard, func(w walked) { whole = append(whole, w) }))
		perWhole = float64(heap()-before) / float64(len(whole))
		runtime.KeepAlive(whole)
	}
	b.ReportMetric(perKept, "B/kept-entry")
	b.ReportMetric(perWhole, "B/whole-entry")
	b.ReportMetric(perKept/perWhole, "ratio")
}
