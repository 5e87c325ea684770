package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/bufpipe"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker/docker/api/types/container"
	"gotest.tools/v3/assert"
)

// BenchmarkImageWriteParts takes an image restore's write apart, in the
// test process (so that -cpuprofile sees the plugin's side), on the
// volume and backup of BenchmarkImageRestore:
//
//   - sink: the content pass (imagearchive.ContentStream, every file
//     checked) into io.Discard: our side alone;
//   - cp: the generator's tar file through CopyToContainer into the
//     emptied volume (`docker cp`, the limit);
//   - pipe: the same file's bytes through the restore's buffered pipe:
//     what the pipe costs;
//   - cpb: the content pass's bytes, written to a file first, through
//     CopyToContainer: what the restore sends (the backup's directory
//     entries too, which the generator's tar has not), without the
//     checks or the pipe;
//   - ours: the content pass through that pipe and CopyToContainer, as
//     the restore wrote before pkg/bufpipe;
//   - ours-q: the content pass through bufpipe, as the restore writes
//     now.
//
// DTR_BENCH_PARTS=cpb,ours-q,ours (names, comma-separated) runs only those.
//
// Before each write the volume is emptied and settles (imageBench.emptied:
// sync(2), then DTR_BENCH_SETTLE, not timed), so that no write pays for
// another's writeback or emptying; the sync after each write is timed
// apart ("sync"), the writeback its write left. Each write logs when the engine read the last
// byte and when it answered (the tail), and the CPU seconds of dockerd
// and its children (the extraction) beside this process's. Needs the
// engine on this host (it reads /proc of dockerd), as root:
//
//	DTR_BENCH_IMAGE_MB=512 go test -v -run '^$' -bench 'ImageWriteParts$' -benchtime 3x -timeout 60m ./e2e
func BenchmarkImageWriteParts(b *testing.B) {
	ib := newImageBench(b)
	ib.copyIn(b)
	backup := filepath.Join(ib.dir, "images.tar")
	ib.plugin(b, "backup", "images", "-q", "-o", backup)
	f, err := os.Open(backup)
	assert.NilError(b, err)
	defer f.Close()
	open := imagearchive.FileSource(f)
	rep, err := imagearchive.VerifyStream(open)
	assert.NilError(b, err)
	assert.Assert(b, rep.OK(), "%+v", rep.Problems)
	dockerd := dockerdPID(b)
	// ours is the content pass's bytes in a file: what the restore sends,
	// without the checks, the pipe or the backup's reading.
	ours := filepath.Join(ib.dir, "content-pass.tar")
	of, err := os.Create(ours)
	assert.NilError(b, err)
	_, err = imagearchive.ContentStream(open, rep, nil, of)
	assert.NilError(b, err)
	assert.NilError(b, of.Close())

	type part struct {
		name           string
		write, wb, cpu time.Duration // totals
		tail           time.Duration
		engineCPU      time.Duration
	}
	parts := map[string]*part{}
	var order []string
	get := func(name string) *part {
		if parts[name] == nil {
			parts[name] = &part{name: name}
			order = append(order, name)
		}
		return parts[name]
	}
	// write empties the volume, syncs, and times one write of what
	// content produces into it.
	write := func(name string, content func(w io.Writer) error, fromFile string) {
		p := get(name)
		ib.emptied(b)
		ib.withVolume(b, false, func(ctx context.Context, id string) {
			var r io.Reader
			var wait func() error
			switch {
			case fromFile != "":
				tf, err := os.Open(fromFile)
				assert.NilError(b, err)
				defer tf.Close()
				r, wait = tf, func() error { return nil }
			case name == "ours-q":
				var rc io.ReadCloser
				rc, wait = bufpipe.Run(256<<10, 16, content)
				defer rc.Close()
				r = rc
			default:
				r, wait = benchPipe(content)
			}
			lr := &lastRead{r: r}
			cpu0, eng0 := selfCPU(), procCPU(b, dockerd)
			start := time.Now()
			err := ib.c.Client.CopyToContainer(ctx, id, imagevolume.MountPoint, lr, container.CopyToContainerOptions{})
			end := time.Now()
			assert.NilError(b, err)
			assert.NilError(b, wait())
			cpu, eng := selfCPU()-cpu0, procCPU(b, dockerd)-eng0
			s := time.Now()
			syscall.Sync()
			wb := time.Since(s)
			p.write += end.Sub(start)
			p.wb += wb
			p.cpu += cpu
			p.engineCPU += eng
			tail := end.Sub(lr.last)
			p.tail += tail
			b.Logf("%-5s write %.2fs (last byte read at %.2fs, tail %.2fs), then sync %.2fs; CPU: ours %.2fs, dockerd+children %.2fs",
				name, end.Sub(start).Seconds(), lr.last.Sub(start).Seconds(), tail.Seconds(), wb.Seconds(), cpu.Seconds(), eng.Seconds())
		})
	}
	steps := []func(){
		func() {
			p := get("sink")
			c0 := selfCPU()
			d := timed(func() {
				_, err := imagearchive.ContentStream(open, rep, nil, io.Discard)
				assert.NilError(b, err)
			})
			p.write += d
			p.cpu += selfCPU() - c0
			b.Logf("sink  %.2fs", d.Seconds())
		},
		func() { write("cp", nil, ib.data.Tar) },
		func() { write("cpb", nil, ours) },
		func() {
			write("pipe", func(w io.Writer) error {
				tf, err := os.Open(ib.data.Tar)
				if err != nil {
					return err
				}
				defer tf.Close()
				_, err = io.Copy(w, tf)
				return err
			}, "")
		},
		func() {
			write("ours-q", func(w io.Writer) error {
				_, err := imagearchive.ContentStream(open, rep, nil, w)
				return err
			}, "")
		},
		func() {
			write("ours", func(w io.Writer) error {
				_, err := imagearchive.ContentStream(open, rep, nil, w)
				return err
			}, "")
		},
	}
	if only := os.Getenv("DTR_BENCH_PARTS"); only != "" {
		var some []func()
		for i, name := range []string{"sink", "cp", "cpb", "pipe", "ours-q", "ours"} {
			if strings.Contains(","+only+",", ","+name+",") {
				some = append(some, steps[i])
			}
		}
		steps = some
	}
	b.ResetTimer()
	alternate(b.N, steps...)
	b.StopTimer()
	mb := float64(ib.data.Bytes) / 1e6 * float64(b.N)
	for _, name := range order {
		p := parts[name]
		b.ReportMetric(mb/p.write.Seconds(), name+"-MB/s")
		if name != "sink" {
			b.ReportMetric(p.tail.Seconds()/float64(b.N), name+"-tail-s")
			b.ReportMetric(p.wb.Seconds()/float64(b.N), name+"-sync-s")
			b.ReportMetric(p.engineCPU.Seconds()/float64(b.N), name+"-dockerd-cpu-s")
		}
		b.ReportMetric(p.cpu.Seconds()/float64(b.N), name+"-our-cpu-s")
	}
	bb := b
	ratio := func(a, b, name string) {
		if parts[a] != nil && parts[b] != nil {
			bb.ReportMetric(parts[a].write.Seconds()/parts[b].write.Seconds(), name)
		}
	}
	ratio("cp", "ours", "ours/cp")
	ratio("cp", "pipe", "pipe/cp")
	ratio("cpb", "ours", "ours/cpb")
	ratio("cp", "cpb", "cpb/cp")
	ratio("ours", "ours-q", "ours-q/ours")
}

// benchPipe runs write into a pipe through a 256 KiB buffer, as the
// restore's produce does.
func benchPipe(write func(io.Writer) error) (io.Reader, func() error) {
	pr, pw := io.Pipe()
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bw := bufio.NewWriterSize(pw, 256<<10)
		werr = write(bw)
		if werr == nil {
			werr = bw.Flush()
		}
		pw.CloseWithError(werr)
	}()
	return pr, func() error { wg.Wait(); return werr }
}

// lastRead notes when the last byte was read.
type lastRead struct {
	r    io.Reader
	last time.Time
}

func (l *lastRead) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 || err != nil {
		l.last = time.Now()
	}
	return n, err
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dockerdPID is the engine's process on this host.
func dockerdPID(b *testing.B) int {
	data, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		b.Skipf("the engine's process is not on this host: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	assert.NilError(b, err)
	return pid
}

// procCPU is a process's CPU time with its waited-for children's
// (utime, stime, cutime, cstime of /proc/PID/stat).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	assert.NilError(b, err)
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // fields 14-17, counted from state (3)
		n, err := strconv.ParseInt(fields[i], 10, 64)
		assert.NilError(b, err)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100
}
