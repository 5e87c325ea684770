package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/poll"
)

// BenchmarkHelperStart measures a database helper's fixed cost as a user
// sees it: `backup create` of an empty one-replica DTR through the Docker
// context, from the plugin's start to its "connected to rethinkdb" line
// (discovery, the helper's creation, the agent's fill or cache hit, its
// start, the certificates, the first stream through it: after it comes the
// first row), and to its exit. Each iteration removes the agent's cache
// volume, then runs once (a miss: the run fills the volume) and once more
// (a hit). With DTR_BENCH_OLD_PLUGIN set to another build of the plugin
// (main's, which copies the agent into every helper), a run of it goes
// beside them, in the same iteration.
//
//	go test -run '^$' -bench HelperStart -benchtime 5x ./e2e
func BenchmarkHelperStart(b *testing.B) {
	cfg := dockerConfig(b)
	c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{}})
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	old := os.Getenv("DTR_BENCH_OLD_PLUGIN")
	dir := b.TempDir()
	ctx := context.Background()
	removeCaches := func() {
		list, err := c.Client.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", agentbin.LabelDigest))})
		assert.NilError(b, err)
		for _, v := range list.Volumes {
			// In use for a moment after a run: the engine removes its
			// helper (AutoRemove), which the plugin does not wait for.
			poll.WaitOn(b, func(poll.LogT) poll.Result {
				if err := c.Client.VolumeRemove(ctx, v.Name, true); err != nil {
					return poll.Continue("%v", err)
				}
				return poll.Success()
			}, poll.WithTimeout(30*time.Second), poll.WithDelay(20*time.Millisecond))
		}
	}
	b.Cleanup(removeCaches)
	// run runs a backup, and returns the time to the connected line, and
	// to the exit.
	run := func(plugin, want string) (time.Duration, time.Duration) {
		cmd := exec.Command(plugin, "backup", "create", "-o", filepath.Join(dir, "b.tar"))
		stderr, err := cmd.StderrPipe()
		assert.NilError(b, err)
		began := time.Now()
		assert.NilError(b, cmd.Start())
		var connected time.Duration
		var all strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if connected == 0 && strings.Contains(sc.Text(), "connected to rethinkdb ") {
				connected = time.Since(began)
			}
		}
		assert.NilError(b, cmd.Wait(), all.String())
		took := time.Since(began)
		assert.Assert(b, connected > 0, all.String())
		assert.Assert(b, strings.Contains(all.String(), want), "%q in %s", want, all.String())
		os.Remove(filepath.Join(dir, "b.tar"))
		return connected, took
	}
	var missC, missT, hitC, hitT, oldC, oldT time.Duration
	steps := []func(){
		func() {
			removeCaches()
			cc, t := run(bin, "(its agent put in the node's cache)")
			missC, missT = missC+cc, missT+t
			cc, t = run(bin, "(its agent from the node's cache)")
			hitC, hitT = hitC+cc, hitT+t
		},
	}
	if old != "" {
		steps = append(steps, func() {
			cc, t := run(old, " helper ")
			oldC, oldT = oldC+cc, oldT+t
		})
	}
	b.ResetTimer()
	alternate(b.N, steps...)
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(missC.Seconds()/n, "miss-connected-s")
	b.ReportMetric(missT.Seconds()/n, "miss-run-s")
	b.ReportMetric(hitC.Seconds()/n, "hit-connected-s")
	b.ReportMetric(hitT.Seconds()/n, "hit-run-s")
	if old != "" {
		b.ReportMetric(oldC.Seconds()/n, "old-connected-s")
		b.ReportMetric(oldT.Seconds()/n, "old-run-s")
	}
}
