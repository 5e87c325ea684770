package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker/docker/api/types/container"
	"gotest.tools/v3/assert"
)

// copyInTar extracts a content tar into the volume through the archive API.
func (ib *imageBench) copyInTar(b *testing.B, file string) {
	b.Helper()
	ib.withVolume(b, false, func(ctx context.Context, id string) {
		f, err := os.Open(file)
		assert.NilError(b, err)
		defer f.Close()
		assert.NilError(b, ib.c.Client.CopyToContainer(ctx, id, imagevolume.MountPoint, f, container.CopyToContainerOptions{}))
	})
}

// BenchmarkImageIncremental measures `backup images --since FULL` after 5 %
// new content against a full backup of the same grown volume, through the
// real path (the plugin, its helper, the engine), in the same run: the
// generated volume (DTR_BENCH_IMAGE_MB), a full backup of it, then a
// twentieth of its size generated from another seed and copied in (new
// blobs, small and large, and their links). Full and incremental backups
// of the grown volume go in turn, the order reversed every other
// iteration. It reports incremental/full for time and for size.
// DTR_BENCH_OTHER=FILE times another static build's incremental in the
// same turns (other-inc/full-time).
func BenchmarkImageIncremental(b *testing.B) {
	ib := newImageBench(b)
	ib.copyIn(b)
	base := filepath.Join(ib.dir, "base.tar")
	ib.plugin(b, "backup", "images", "-q", "-o", base)
	more := genImageVolume(b, b.TempDir(), benchImageSeed+1, benchImageSize(b)/20)
	ib.copyInTar(b, more.Tar)
	b.Logf("added %d files (%d blobs), %.1f MB", more.Files, more.Blobs, float64(more.Bytes)/1e6)

	full, inc := filepath.Join(ib.dir, "full.tar"), filepath.Join(ib.dir, "inc.tar")
	other := os.Getenv("DTR_BENCH_OTHER")
	var viaFull, viaInc, viaOther time.Duration
	steps := []func(){
		func() { viaFull += ib.plugin(b, "backup", "images", "-q", "-o", full) },
		ib.paired(b, other, []string{"backup", "images", "-q", "--since", base, "-o", inc}, &viaInc, &viaOther),
	}
	b.ResetTimer()
	alternate(b.N, steps...)
	b.StopTimer()
	ib.trace(b, "backup", "images", "--since", base, "-o", inc)
	fullSize, incSize := fileSize(b, full), fileSize(b, inc)
	b.ReportMetric(viaInc.Seconds()/viaFull.Seconds(), "inc/full-time")
	b.ReportMetric(float64(incSize)/float64(fullSize), "inc/full-size")
	b.ReportMetric(viaFull.Seconds()/float64(b.N), "full-s")
	b.ReportMetric(viaInc.Seconds()/float64(b.N), "inc-s")
	if other != "" {
		b.ReportMetric(viaOther.Seconds()/viaFull.Seconds(), "other-inc/full-time")
		b.ReportMetric(viaOther.Seconds()/float64(b.N), "other-inc-s")
	}
	b.ReportMetric(float64(ib.data.Bytes+more.Bytes)/1e6, "data-MB")
}

// BenchmarkImageParallelRead asks whether the engine serves several archive
// reads of one volume faster than one: the whole volume in one
// CopyFromContainer against the blobs' 256 directories
// (docker/registry/v2/blobs/sha256/xx) and the repositories, read by
// DTR_BENCH_READERS (default 4) requests at once, all thrown away. The two
// go in turn, the order reversed every other iteration.
func BenchmarkImageParallelRead(b *testing.B) {
	readers := 4
	if s := os.Getenv("DTR_BENCH_READERS"); s != "" {
		fmt.Sscan(s, &readers)
	}
	ib := newImageBench(b)
	ib.copyIn(b)
	dirs := []string{"docker/registry/v2/repositories"}
	for i := range 256 {
		dirs = append(dirs, fmt.Sprintf("docker/registry/v2/blobs/sha256/%02x", i))
	}
	var one, many time.Duration
	var oneBytes, manyBytes int64
	parallel := func() int64 {
		var n atomic.Int64
		ib.withVolume(b, true, func(ctx context.Context, id string) {
			work := make(chan string)
			var wg sync.WaitGroup
			for range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for d := range work {
						rc, _, err := ib.c.Client.CopyFromContainer(ctx, id, imagevolume.MountPoint+"/"+d)
						if errdefs.IsNotFound(err) {
							continue
						}
						assert.Check(b, err)
						if err != nil {
							continue
						}
						c, err := io.Copy(io.Discard, rc)
						rc.Close()
						assert.Check(b, err)
						n.Add(c)
					}
				}()
			}
			for _, d := range dirs {
				work <- d
			}
			close(work)
			wg.Wait()
		})
		return n.Load()
	}
	steps := []func(){
		func() { one += timed(func() { oneBytes = ib.readOut(b) }) },
		func() { many += timed(func() { manyBytes = parallel() }) },
	}
	b.ResetTimer()
	alternate(b.N, steps...)
	b.StopTimer()
	assert.Assert(b, manyBytes > ib.data.Bytes && oneBytes > ib.data.Bytes, "one read %d bytes, parallel %d, of %d", oneBytes, manyBytes, ib.data.Bytes)
	mb := float64(ib.data.Bytes) / 1e6 * float64(b.N)
	b.ReportMetric(mb/one.Seconds(), "one-MB/s")
	b.ReportMetric(mb/many.Seconds(), "parallel-MB/s")
	b.ReportMetric(one.Seconds()/many.Seconds(), "parallel/one-speed")
	b.ReportMetric(float64(readers), "readers")
}
