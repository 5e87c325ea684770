package agentbin

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"gotest.tools/v3/assert"
)

// BenchmarkEngineHelperStart times a helper's engine calls on the local
// engine, outside any fixture (so it takes no engine lock): an empty image
// (imported, removed after), the agent (this test binary's own file
// stands in: any static binary does) from the cache, which the first
// iteration fills; then per iteration Create (a hit: create and the
// marker's stat), attach, start, the first byte the program writes, its
// exit, and the removal. It tells how much of a helper's fixed cost the
// cache can take away, and what is the engine's own start.
//
//	CGO_ENABLED=0 DTR_BENCH_ENGINE=1 go test -run '^$' -bench EngineHelperStart -benchtime 5x ./pkg/agentbin
func BenchmarkEngineHelperStart(b *testing.B) {
	if os.Getenv("DTR_BENCH_ENGINE") == "" {
		b.Skip("set DTR_BENCH_ENGINE=1 to time helpers on the local Docker engine")
	}
	ctx := context.Background()
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	assert.NilError(b, err)
	var empty bytes.Buffer
	assert.NilError(b, tar.NewWriter(&empty).Close())
	const ref = "docker-dtr-bench-empty:1"
	rc, err := api.ImageImport(ctx, image.ImportSource{Source: &empty, SourceName: "-"}, ref, image.ImportOptions{})
	assert.NilError(b, err)
	rc.Close()
	bin, err := os.Executable()
	assert.NilError(b, err)
	digest, err := Digest(bin)
	assert.NilError(b, err)
	b.Cleanup(func() {
		for range 100 { // in use until the last helper is gone
			if api.VolumeRemove(ctx, VolumeName(digest), true) == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		api.ImageRemove(ctx, ref, image.RemoveOptions{Force: true})
	})
	var create, start, first, exit, remove time.Duration
	var hits int
	for i := range b.N + 1 {
		cfg := &container.Config{Image: ref, Entrypoint: []string{Path}, Cmd: []string{"-test.run=^$"},
			AttachStdout: true, AttachStderr: true, Labels: helpercontainer.Labels(helpercontainer.KindDB, "bench")}
		host := &container.HostConfig{LogConfig: container.LogConfig{Type: "none"}, NetworkMode: "none"}
		t0 := time.Now()
		id, src, err := Create(ctx, api, Helper{Name: fmt.Sprintf("docker-dtr-bench-helper-%d", i), Config: cfg, Host: host, Binary: bin, Arch: runtime.GOARCH})
		assert.NilError(b, err)
		t1 := time.Now()
		hj, err := api.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
		assert.NilError(b, err)
		w, _ := api.ContainerWait(ctx, id, container.WaitConditionNextExit)
		assert.NilError(b, api.ContainerStart(ctx, id, container.StartOptions{}))
		t2 := time.Now()
		hj.Reader.Read(make([]byte, 1))
		t3 := time.Now()
		<-w
		t4 := time.Now()
		hj.Close()
		assert.NilError(b, helpercontainer.Remove(ctx, api, id))
		t5 := time.Now()
		if i == 0 {
			b.Logf("the first (%s): create and fill %.3fs, start %.3fs", src, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds())
			b.ResetTimer()
			continue
		}
		if src == Cached {
			hits++
		}
		create += t1.Sub(t0)
		start += t2.Sub(t1)
		first += t3.Sub(t2)
		exit += t4.Sub(t3)
		remove += t5.Sub(t4)
	}
	b.StopTimer()
	n := float64(b.N)
	assert.Equal(b, hits, b.N)
	b.ReportMetric(create.Seconds()/n, "create-hit-s")
	b.ReportMetric(start.Seconds()/n, "attach-start-s")
	b.ReportMetric(first.Seconds()/n, "first-byte-s")
	b.ReportMetric(exit.Seconds()/n, "exit-s")
	b.ReportMetric(remove.Seconds()/n, "remove-s")
}
