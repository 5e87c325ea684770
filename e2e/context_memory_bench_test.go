package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"gotest.tools/v3/assert"
)

// BenchmarkContextMemory measures the peak memory of `backup create`
// through the Docker context against the real RethinkDB holding 1× and
// 10× the data (DTR_BENCH_ROWS, 100,000 by default, and ten times that),
// on two fixtures of one replica each: the plugin binary's peak RSS (its
// rusage) and the database helper's agent's (the step it prints after the
// dump, from its own rusage), and the ratios 10×/1× (issue 22's goal: 1.2
// or less). Loading 10× into the fixture's RethinkDB takes minutes.
//
//	go test -run '^$' -bench ContextMemory -benchtime 1x -timeout 60m ./e2e
func BenchmarkContextMemory(b *testing.B) {
	cfg := dockerConfig(b)
	rows := benchEnvInt(b, "DTR_BENCH_ROWS", 100000)
	type peak struct{ plugin, agent float64 } // MiB
	measure := func(b *testing.B, rows int) peak {
		c := dtrfixture.Start(b, dtrfixture.Options{Replicas: 1, Components: []string{}})
		mb, gen := newMetadataBench(b, cfg, c, rows)
		var p peak
		for range b.N {
			out := filepath.Join(mb.dir, "backup.tar")
			cmd := exec.Command(mb.bin, "backup", "create", "--progress", "plain", "-o", out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			assert.NilError(b, cmd.Run(), stderr.String())
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			p.plugin = max(p.plugin, float64(ru.Maxrss)/1024) // KiB on Linux
			m := agentPeak.FindSubmatch(stderr.Bytes())
			assert.Assert(b, m != nil, "no peak memory from the database helper:\n%s", stderr.String())
			a, err := strconv.ParseFloat(string(m[1]), 64)
			assert.NilError(b, err)
			p.agent = max(p.agent, a)
		}
		b.Logf("%d rows (%.1f MB of documents, %.1f MB archive): plugin %.1f MiB, database helper %.1f MiB",
			gen.Rows, float64(gen.Bytes)/1e6, float64(mb.size)/1e6, p.plugin, p.agent)
		return p
	}
	var one, ten peak
	b.Run("1x", func(b *testing.B) { one = measure(b, rows) })
	b.Run("10x", func(b *testing.B) { ten = measure(b, 10*rows) })
	if one.plugin == 0 || ten.plugin == 0 {
		return
	}
	// A benchmark with sub-benchmarks prints no metrics of its own.
	b.Logf("peak RSS 10x/1x: plugin %.2f (%.1f / %.1f MiB), database helper %.2f (%.1f / %.1f MiB)",
		ten.plugin/one.plugin, ten.plugin, one.plugin, ten.agent/one.agent, ten.agent, one.agent)
}

// agentPeak is the database helper's step after a dump.
var agentPeak = regexp.MustCompile(`the database helper's peak memory: ([0-9.]+) MiB`)
