package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/cpupin"
	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/iocount"
	"go.yaml.in/yaml/v3"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// BenchmarkS3ImageBackup measures `backup images` of a DTR whose images
// are in S3 (SeaweedFS's S3 gateway, the generated registry content of
// the image benchmarks, DTR_BENCH_IMAGE_MB) against the limit: a bare
// read of the same objects by the same driver (docker/distribution's s3
// driver, in this process, through the server's published port): list
// the bucket, then read every object and throw it away, 16 at a time (as
// many as the agent reads ahead), and, for reference, one after the
// other. They alternate, the order reversed every other iteration. The
// plugin's side also starts its helpers, reads DTR's settings, and hashes
// and writes the archive.
//
// Two variants, as the metadata benchmarks: "shared", everything on the
// same two cores; "pinned", the S3 server alone on core 1.
// DTR_BENCH_OTHER=FILE times another static build of the plugin in the
// same turns (other-MB/s): a change against the code before it.
// DTR_BENCH_DOCKERD_PROFILE=FILE, with DTR_BENCH_TRACE, profiles the
// engine's daemon during the traced run.
//
//	DTR_BENCH_IMAGE_MB=512 go test -run '^$' -bench S3ImageBackup -benchtime 3x -timeout 60m ./e2e
func BenchmarkS3ImageBackup(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	s3 := dtrfixture.StartS3(b, c)
	const root = "/dtr"
	driver := c.Connect(b, rep.ID)
	assert.NilError(b, r.DBCreate("dtr2").Exec(driver))
	assert.NilError(b, r.DB("dtr2").TableCreate("properties").Exec(driver))
	_, err := r.DB("dtr2").Table("properties").Insert(map[string]any{"id": "storage.yml", "value": s3.RegistryStorage(root)}).RunWrite(driver)
	assert.NilError(b, err)

	// The same driver and parameters, at the published port.
	var conf struct {
		Storage map[string]map[string]any `yaml:"storage"`
	}
	assert.NilError(b, yaml.Unmarshal([]byte(s3.RegistryStorage(root)), &conf))
	params := conf.Storage["s3"]
	params["regionendpoint"] = s3.HostEndpoint
	ctx := context.Background()
	bk, err := bucket.Open(ctx, dtrstorage.Backend{Driver: "s3", Bucket: s3.Bucket}, params)
	assert.NilError(b, err)

	dir := b.TempDir()
	data := genImageVolume(b, dir, benchImageSeed, benchImageSize(b))
	start := time.Now()
	f, err := os.Open(data.Tar)
	assert.NilError(b, err)
	type obj struct {
		name string
		data []byte
	}
	objs := make(chan obj, 16)
	var puts sync.WaitGroup
	for range 8 {
		puts.Add(1)
		go func() {
			defer puts.Done()
			for o := range objs {
				if err := bk.Put(ctx, o.name, bytes.NewReader(o.data), int64(len(o.data))); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		assert.NilError(b, err)
		body, err := io.ReadAll(tr)
		assert.NilError(b, err)
		objs <- obj{hdr.Name, body}
	}
	close(objs)
	puts.Wait()
	f.Close()
	b.Logf("put %d files, %.1f MB, into the bucket in %v", data.Files, float64(data.Bytes)/1e6, time.Since(start).Round(time.Millisecond))

	// bare lists the bucket and reads every object, with this many reads
	// at once.
	bare := func(readers int) int64 {
		files, err := bk.Files(ctx)
		assert.NilError(b, err)
		var n atomic.Int64
		next := make(chan bucket.File)
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 256<<10)
				for f := range next {
					rc, err := bk.Open(ctx, f.Path)
					if err != nil {
						b.Error(err)
						continue
					}
					m, err := io.CopyBuffer(io.Discard, rc, buf)
					rc.Close()
					if err != nil {
						b.Error(err)
					}
					n.Add(m)
				}
			}()
		}
		for _, f := range files {
			next <- f
		}
		close(next)
		wg.Wait()
		return n.Load()
	}
	ib := &imageBench{c: c, cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), dir: dir}
	out := filepath.Join(dir, "images.tar")
	measure := func(b *testing.B) {
		var viaPlugin, viaBare, viaSerial, viaOther time.Duration
		// DTR_BENCH_OTHER names another build of the plugin (a static
		// one, as the agent must be), timed in the same turns: a change
		// measured against the code before it, in one run.
		other := os.Getenv("DTR_BENCH_OTHER")
		// add adds one turn's time to a total, and logs it: the turns
		// of a noisy machine are worth seeing.
		add := func(total *time.Duration, what string, d time.Duration) {
			*total += d
			b.Logf("%s: %.2fs", what, d.Seconds())
		}
		steps := []func(){
			func() { add(&viaPlugin, "plugin", ib.plugin(b, "backup", "images", "-q", "-o", out)) },
			func() {
				add(&viaBare, "bare read", timed(func() {
					n := bare(16)
					assert.Assert(b, n == data.Bytes, "the bare read gave %d bytes of %d", n, data.Bytes)
				}))
			},
			func() { add(&viaSerial, "bare read, one at a time", timed(func() { bare(1) })) },
		}
		if other != "" {
			steps = append(steps, func() {
				add(&viaOther, "other", timed(func() {
					o, err := exec.Command(other, "backup", "images", "-q", "-o", out).CombinedOutput()
					assert.NilError(b, err, string(o))
				}))
			})
		}
		b.ResetTimer()
		alternate(b.N, steps...)
		b.StopTimer()
		if os.Getenv("DTR_BENCH_TRACE") != "" {
			// Where the CPU goes: one more run of each, with the
			// machine's counters around it (logged before the trace:
			// without -v, a benchmark's log keeps its first lines only).
			before := cpuNow(b, c, s3.Container)
			// DTR_BENCH_DOCKERD_PROFILE=FILE: the engine's own profile of
			// its first 8 s of the run.
			profiled := profileDockerd(b, c, os.Getenv("DTR_BENCH_DOCKERD_PROFILE"), 8*time.Second)
			cmd := exec.Command(ib.bin, "backup", "images", "-q", "-o", out)
			o, err := cmd.CombinedOutput()
			assert.NilError(b, err, string(o))
			profiled()
			plug := cpuNow(b, c, s3.Container).sub(before)
			own := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			before, self := cpuNow(b, c, s3.Container), selfCPU()
			bare(16)
			bareUse, self := cpuNow(b, c, s3.Container).sub(before), selfCPU()-self
			b.Logf("plugin's run: %s; of which the plugin's process %.2fs", plug, own.Seconds())
			b.Logf("bare read: %s; of which this process %.2fs", bareUse, self.Seconds())
			// The agent's side alone: its send, in this process, through
			// the published port, to nowhere (no helper, no attach stream,
			// no plugin).
			before, self = cpuNow(b, c, s3.Container), selfCPU()
			var sent int64
			took := timed(func() { sent = agentSendAlone(b, bk) })
			agentUse, self := cpuNow(b, c, s3.Container).sub(before), selfCPU()-self
			b.Logf("the agent's send alone: %.1f MB in %v (%.1f MB/s); %s; of which this process %.2fs",
				float64(sent)/1e6, took.Round(time.Millisecond), float64(sent)/1e6/took.Seconds(), agentUse, self.Seconds())
		}
		ib.trace(b, "backup", "images", "-o", out)
		if other != "" {
			(&imageBench{bin: other}).trace(b, "backup", "images", "-o", out)
		}
		mb := float64(data.Bytes) / 1e6 * float64(b.N)
		b.ReportMetric(mb/viaPlugin.Seconds(), "plugin-MB/s")
		b.ReportMetric(mb/viaBare.Seconds(), "bare-read-MB/s")
		b.ReportMetric(viaBare.Seconds()/viaPlugin.Seconds(), "plugin/bare-read")
		b.ReportMetric(mb/viaSerial.Seconds(), "bare-serial-MB/s")
		if other != "" {
			b.ReportMetric(mb/viaOther.Seconds(), "other-MB/s")
			b.ReportMetric(viaBare.Seconds()/viaOther.Seconds(), "other/bare-read")
		}
		b.ReportMetric(float64(data.Bytes)/1e6, "data-MB")
	}
	b.Run("shared", measure)
	// The S3 server on core 1; on core 0 this process (the bare read),
	// the plugin it starts and every helper of the plugin's: the bucket
	// elsewhere, as on a real DTR, where the agent and the plugin do not
	// take the server's cores.
	b.Run("pinned", func(b *testing.B) {
		if runtime.NumCPU() < 2 {
			b.Skip("pinning needs 2 cores")
		}
		setCPUs(b, c, s3.Container, "1")
		defer setCPUs(b, c, s3.Container, fmt.Sprintf("0-%d", runtime.NumCPU()-1))
		pinned := pinHelpers(b, c, "0", func(string) bool { return true })
		unpin, err := cpupin.Process(0)
		assert.NilError(b, err)
		defer unpin()
		measure(b)
		b.Logf("helpers pinned to core 0: %d", pinned.Load())
	})
}

// agentSendAlone runs the agent's send of the bucket (agent.SendBucket) in
// this process, its stream thrown away, and returns the bytes it sent. With
// DTR_BENCH_PROFILE set, it writes a CPU profile of it there.
func agentSendAlone(b *testing.B, bk *bucket.Bucket) int64 {
	if p := os.Getenv("DTR_BENCH_PROFILE"); p != "" {
		f, err := os.Create(p)
		assert.NilError(b, err)
		defer f.Close()
		assert.NilError(b, pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	// The plugin's list of files to leave out is empty; then stdin stays
	// open, as the plugin's lease does, until the send is over.
	lease, hold := io.Pipe()
	defer hold.Close()
	out := &iocount.Writer{W: io.Discard}
	err := agent.SendBucket(context.Background(), bk, "storage", io.MultiReader(strings.NewReader("end\n"), lease), out, time.Hour)
	assert.NilError(b, err)
	return out.N
}
