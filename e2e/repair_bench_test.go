package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
)

// BenchmarkRepair measures the emergency repair of DTR's tables on a real
// three-server RethinkDB whose two other servers are cut off from dtr-ol,
// against its limit in the same run: the same repair typed into the
// driver by hand (every table reverted with emergency_repair
// "unsafe_rollback", each database waited for, every table given its one
// reachable replica, waited for again), which is the server's own cost.
// Each iteration repairs twice, by hand and by the plugin, the cluster put
// back together in between (servers reconnected, tables replicated).
//
// The plugin's figure is the whole command (`repair --force
// --no-safety-backup -q --replica-id`: discovery, the database helper, the
// plan, the repair, the final check, and the status it prints) and the
// repair alone (the "in …" of its result line).
//
// DTR_BENCH_REPAIR_ROWS sizes the data (default 100,000 rows: the repair
// copies nothing, so the row count matters little).
func BenchmarkRepair(b *testing.B) {
	cfg := dockerConfig(b)
	bin := filepath.Join(cfg, "cli-plugins", "docker-dtr")
	rows := 100_000
	if v, err := strconv.Atoi(os.Getenv("DTR_BENCH_REPAIR_ROWS")); err == nil && v > 0 {
		rows = v
	}
	c := dtrfixture.Start(b, dtrfixture.Options{Components: []string{}})
	ids := []string{c.Replicas[0].ID, c.Replicas[1].ID, c.Replicas[2].ID}
	driver := c.Connect(b, ids[2])
	gen, err := dtrgen.Generate(context.Background(), driver, dtrgen.Options{Rows: rows, Seed: benchSeed})
	assert.NilError(b, err)
	c.Replicate(b)
	tables := dtrgen.Plan(rows)
	b.Logf("%d tables, %d rows, %.1f MB, on 3 replicas", len(tables), gen.Rows, float64(gen.Bytes)/1e6)

	lose := func() {
		c.Disconnect(b, ids[0])
		c.Disconnect(b, ids[1])
		c.WaitMajorityLost(b, ids[2])
	}
	heal := func() {
		c.Reconnect(b, ids[0])
		c.Reconnect(b, ids[1])
		c.Replicate(b)
	}
	byHand := func() time.Duration {
		began := time.Now()
		dbs := map[string]bool{}
		for _, t := range tables {
			_, err := r.DB(t.DB).Table(t.Name).Reconfigure(r.ReconfigureOpts{EmergencyRepair: "unsafe_rollback"}).RunWrite(driver)
			assert.NilError(b, err)
			dbs[t.DB] = true
		}
		wait := func() {
			for db := range dbs {
				_, err := r.DB(db).Wait(r.WaitOpts{WaitFor: "ready_for_writes", Timeout: 60}).RunWrite(driver)
				assert.NilError(b, err)
			}
		}
		wait()
		for _, t := range tables {
			_, err := r.DB(t.DB).Table(t.Name).Reconfigure(r.ReconfigureOpts{Shards: 1, Replicas: 1}).RunWrite(driver)
			assert.NilError(b, err)
		}
		wait()
		return time.Since(began)
	}
	took := regexp.MustCompile(`(?m)^repaired \d+ tables from .* in (\S+)$`)
	plugin := func() (command, repair time.Duration) {
		cmd := exec.Command(bin, "repair", "--force", "--no-safety-backup", "-q", "--replica-id", ids[2])
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
		began := time.Now()
		out, err := cmd.Output()
		command = time.Since(began)
		assert.NilError(b, err, "%s", out)
		m := took.FindSubmatch(out)
		assert.Assert(b, m != nil, "%s", out)
		repair, err = time.ParseDuration(string(m[1]))
		assert.NilError(b, err)
		return command, repair
	}

	var hand, command, repair time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		lose()
		b.StartTimer()
		hand += byHand()
		b.StopTimer()
		heal()
		lose()
		b.StartTimer()
		cmdTook, repairTook := plugin()
		command += cmdTook
		repair += repairTook
		b.StopTimer()
		heal()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(hand.Seconds()/n, "by-hand-s")
	b.ReportMetric(repair.Seconds()/n, "repair-s")
	b.ReportMetric(command.Seconds()/n, "command-s")
	b.ReportMetric(hand.Seconds()/repair.Seconds(), "by-hand/repair")
	b.ReportMetric(hand.Seconds()/command.Seconds(), "by-hand/command")
	b.ReportMetric(float64(len(tables)), "tables")
}
