package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/internal/dtrtest"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/errdefs"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Fault injection: a backup that meets a crash, a signal, a full or
// read-only disk or a lost engine connection exits non-zero with a one-line
// reason, leaves no file (final or temporary) and no helper container, and
// changes nothing in the DTR. Each command shares one fixture cluster across
// its subtests (faultRig: the command, when a run is under way, how to
// snapshot its data); the scenarios and helpers (startBackup,
// killDuringBackup, engineProxy, outputDirFull, outputDirReadOnly,
// assertNoSecrets, assertFailed, assertUnchanged) work from the rig. The
// metadata restore has a rig of its own (restoreRig, TestFaultRestoreMetadata:
// faults while it loads, and its safety backup put back).

// faultEvents is how many events rows the metadata fixture holds on top of
// dtrtest.Seed: about 9 MB of documents, so a backup takes a moment.
const faultEvents = 30000

// faultWait bounds how long a backup or restore may run on after its fault
// before the test calls it a hang.
const faultWait = 90 * time.Second

// faultRig is a fixture cluster, the command under test, and what every
// scenario checks afterwards.
type faultRig struct {
	cfg, bin string
	c        *dtrfixture.Cluster
	rep      *dtrfixture.Replica
	command  []string // "backup", "create"
	// underWay is the size the temporary file passes once the backup is
	// well under way; bigger than what precedes the bulk of the data.
	underWay int64
	// snapshot reads the data the command reads; diff says how two
	// snapshots differ, in a few lines.
	snapshot func(t *testing.T) any
	diff     func(before, after any) string
	before   any
	// backup is the FILE a restore rig restores.
	backup string
}

// metadataRig is a one-replica cluster with the DTR data set and
// faultEvents events, for `backup create`.
func metadataRig(t *testing.T) *faultRig {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	began := time.Now()
	dtrtest.Seed(t, driver)
	addEvents(t, driver, faultEvents)
	t.Logf("seeded %d events in %s", faultEvents, time.Since(began).Round(time.Millisecond))
	rig := &faultRig{
		cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), c: c, rep: rep,
		command:  []string{"backup", "create"},
		underWay: 1 << 20,
		snapshot: func(t *testing.T) any { return dtrtest.Snapshot(t, c.Connect(t, rep.ID)) },
		diff:     snapshotDiff,
	}
	rig.before = rig.snapshot(t)
	return rig
}

// imagesRig is a one-replica cluster whose registry holds pushed images
// (a 50 MiB layer among them), for `backup images`.
func imagesRig(t *testing.T) *faultRig {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Registry: true, Components: []string{"rethinkdb", "registry"}})
	rep := c.Replicas[0]
	began := time.Now()
	dtrfixture.Push(t, c.Client, rep.RegistryAddr, dtrfixture.BuildImages(t, c.Client, 7))
	t.Logf("built and pushed the images in %s", time.Since(began).Round(time.Millisecond))
	vol := "dtr-registry-" + rep.ID
	rig := &faultRig{
		cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), c: c, rep: rep,
		command:  []string{"backup", "images"},
		underWay: 4 << 20,
		snapshot: func(t *testing.T) any { return dtrfixture.VolumeFiles(t, c.Client, vol) },
		diff:     filesDiff,
	}
	rig.before = rig.snapshot(t)
	return rig
}

// addEvents inserts n events rows, about 300 bytes each, into dtr2.events.
func addEvents(t testing.TB, driver *r.Session, n int) {
	t.Helper()
	payload := seeded{rand.New(rand.NewSource(int64(n)))}
	const batch = 5000
	for i := 0; i < n; i += batch {
		docs := make([]any, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			// Hex of a seeded random: a dump helper compresses what it
			// sends, and a run of one letter would cross the engine in a
			// few kilobytes, too fast to be cut in the middle.
			docs = append(docs, map[string]any{"id": fmt.Sprintf("fault-%06d", j), "type": "TAG_PUSH", "payload": hex.EncodeToString(payload.bytes(150))})
		}
		res, err := r.DB("dtr2").Table("events").Insert(docs).RunWrite(driver)
		assert.NilError(t, err)
		assert.Equal(t, res.Errors, 0, res.FirstError)
	}
}

// seeded gives the same bytes on every run.
type seeded struct{ r *rand.Rand }

func (s seeded) bytes(n int) []byte {
	b := make([]byte, n)
	s.r.Read(b)
	return b
}

// leased says a helper kind's agent runs for the whole command (it is
// looked for once running); an image helper may be only created.
func leased(kind string) bool {
	return kind == helpercontainer.KindDB
}

func TestFaultBackupCreate(t *testing.T) {
	rig := metadataRig(t)
	rig.secretsAndModes(t)
	rig.outputDirScenarios(t)
	rig.signalScenarios(t)

	// The dump runs in the helper: killed, it is named, with its exit.
	t.Run("database helper killed", func(t *testing.T) {
		var name string
		res := rig.killDuringBackupResult(t, func(t *testing.T, b *pluginRun) {
			h := rig.liveHelper(t, helpercontainer.KindDB)
			name = helperNameOf(h)
			assert.NilError(t, rig.c.Client.ContainerKill(context.Background(), h.ID, "KILL"))
		})
		rig.assertFailed(t, res, "the database helper "+name+" on node ", "exited before it was done: it exited with code 137 (killed)")
		rig.assertUnchanged(t)
		assertNoHelpers(t, rig.c)
	})

	t.Run("engine connection dropped", func(t *testing.T) {
		rig.engineConnectionDropped(t)
		assertNoHelpers(t, rig.c)
	})

	// Last: it kills RethinkDB and starts it again (its data is in its
	// volume, so nothing is lost, but the server takes a moment to load it).
	t.Run("rethinkdb killed", func(t *testing.T) {
		killed := false
		defer func() {
			if killed {
				rig.c.Start(t, rig.rep.ID, "rethinkdb")
			}
		}()
		res := rig.killDuringBackupResult(t, func(t *testing.T, b *pluginRun) {
			rig.c.Kill(t, rig.rep.ID, "rethinkdb")
			killed = true
		}, runOptions{viaDocker: true})
		rig.c.Start(t, rig.rep.ID, "rethinkdb")
		killed = false
		// The driver's own "rethinkdb: EOF" says nothing of where: the
		// reason names the replica whose RethinkDB went away.
		rig.assertFailed(t, res, "rethinkdb", rig.rep.ID)
		rig.assertUnchanged(t)
	})
}

func TestFaultBackupImages(t *testing.T) {
	rig := imagesRig(t)
	rig.secretsAndModes(t)
	rig.outputDirScenarios(t)
	rig.signalScenarios(t)

	// The engine holds a container while an archive is read from it, so
	// `docker rm -f` of the helper waits until the copy is done: the
	// archive is complete by then. Success is fine if the file verifies;
	// a failure must say what happened without wrong advice.
	t.Run("image helper removed", func(t *testing.T) {
		var helper string
		var removeTook time.Duration
		res := rig.killDuringBackupResult(t, func(t *testing.T, b *pluginRun) {
			h := rig.liveHelper(t, helpercontainer.KindImages)
			helper = strings.TrimPrefix(h.Names[0], "/")
			began := time.Now()
			assert.NilError(t, rig.c.Client.ContainerRemove(context.Background(), h.ID, container.RemoveOptions{Force: true}))
			removeTook = time.Since(began)
		}, runOptions{keepOutput: true})
		t.Logf("docker rm -f %s took %s", helper, removeTook.Round(time.Millisecond))
		if res.code == 0 {
			t.Logf("the copy finished before the helper went: the backup is complete")
			v := docker(t, rig.cfg, nil, "dtr", "backup", "verify", res.out)
			assert.Equal(t, v.code, 0, "a backup that exits 0 verifies: %s%s", v.stdout, v.stderr)
			assert.NilError(t, os.Remove(res.out))
		} else {
			rig.assertFailed(t, res, helper)
			last := reasonLine(res.stderr)
			assert.Check(t, !(strings.Contains(last, "already in progress") && strings.Contains(last, "remove it with")),
				"the reason tells the user to remove %s, whose removal is already in progress (by the time they read it, it is gone); "+
					"the copy had completed, so the backup was complete and was thrown away: %q", helper, last)
		}
		rig.assertUnchanged(t)
	})

	t.Run("engine connection dropped", func(t *testing.T) {
		rig.engineConnectionDropped(t)
	})
}

// --- metadata restore ---

// A `backup restore --force` over live tables that meets a signal, a killed
// database helper, a lost engine connection or a killed RethinkDB while it
// loads exits non-zero with one line saying what state the DTR is in: the
// tables it replaced were put back from the safety backup, or the command
// that puts them back by hand. Either way no helper is left, the replica's
// DTR containers run again, beside FILE there is nothing but FILE and the
// safety backup, and the data is as it was (after the command by hand).

// restoreRig is one replica, its api too (the restore stops it and the
// registry while the database is replaced), with the DTR data set and
// faultEvents events, and a backup of them taken with the plugin: every
// scenario restores it over the same data.
func restoreRig(t *testing.T) *faultRig {
	cfg := dockerConfig(t)
	c := dtrfixture.Start(t, dtrfixture.Options{Replicas: 1, Components: []string{"rethinkdb", "registry", "api"}})
	rep := c.Replicas[0]
	driver := c.Connect(t, rep.ID)
	began := time.Now()
	dtrtest.Seed(t, driver)
	addEvents(t, driver, faultEvents)
	t.Logf("seeded %d events in %s", faultEvents, time.Since(began).Round(time.Millisecond))
	backup := filepath.Join(t.TempDir(), "backup-metadata.tar")
	began = time.Now()
	res := docker(t, cfg, nil, "dtr", "backup", "create", "-o", backup)
	assert.Equal(t, res.code, 0, "the backup the scenarios restore: %s", res.stderr)
	t.Logf("backed up in %s", time.Since(began).Round(time.Millisecond))
	rig := &faultRig{
		cfg: cfg, bin: filepath.Join(cfg, "cli-plugins", "docker-dtr"), c: c, rep: rep,
		command:  []string{"backup", "restore", "--force"},
		backup:   backup,
		snapshot: func(t *testing.T) any { return dtrtest.Snapshot(t, c.Connect(t, rep.ID)) },
		diff:     snapshotDiff,
	}
	rig.before = rig.snapshot(t)
	return rig
}

func TestFaultRestoreMetadata(t *testing.T) {
	rig := restoreRig(t)

	// The plan over live tables changes nothing: no safety backup written,
	// no container stopped. (TestRoundTripThroughTheContext checks the
	// stop and drop lines of a plan.)
	t.Run("dry run", func(t *testing.T) {
		dir := t.TempDir()
		started := startedAt(t, rig.c)
		b := rig.startRestore(t, dir, runOptions{viaDocker: true}, "--dry-run")
		res := b.wait(t)
		assert.Equal(t, res.code, 0, res.stderr)
		events := len(rig.before.(map[string]dtrtest.TableSnapshot)["dtr2.events"].Docs)
		for _, want := range []string{
			fmt.Sprintf("save the %d tables it replaces to %s", len(dtrtest.Tables), filepath.Join(dir, "safety-metadata-"+rig.rep.ID+"-")),
			fmt.Sprintf("drop and create table dtr2.events: %d rows now, %d rows after", events, events),
		} {
			assert.Check(t, is.Contains(res.stdout, want))
		}
		assert.Check(t, !strings.Contains(res.stderr, "stopped "), "a dry run stopped containers:\n%s", res.stderr)
		for name, at := range started {
			info, err := rig.c.Client.ContainerInspect(context.Background(), name)
			assert.NilError(t, err)
			assert.Check(t, info.State.Running && info.State.StartedAt == at, "%s was restarted by a dry run", name)
		}
		assertDir(t, dir, filepath.Base(b.out))
		rig.assertUnchanged(t)
	})

	forEachSignal(t, func(t *testing.T, sig syscall.Signal, via bool) {
		b, res := rig.faultDuringRestore(t, func(t *testing.T, b *pluginRun) {
			assert.NilError(t, b.cmd.Process.Signal(sig))
		}, runOptions{viaDocker: via})
		rig.assertPutBack(t, b, res, "was interrupted", "interrupted")
		assert.Check(t, is.Equal(res.code, 130), "exit status 130, interrupted: %s", res.stderr)
		// The driver calls every ended context a "query timeout": after a
		// signal, that sends the operator looking for a slow database.
		assert.Check(t, !strings.Contains(reasonLine(res.stderr), "timeout"),
			"the reason of an interrupted restore blames a timeout; nothing timed out, the restore was interrupted by %s: %q", sig, reasonLine(res.stderr))
	})

	// The helper that loads the tables next to RethinkDB is killed mid-load:
	// the rollback runs in a new one. The cause names the helper and its
	// exit.
	t.Run("database helper killed", func(t *testing.T) {
		b, res := rig.faultDuringRestore(t, func(t *testing.T, b *pluginRun) {
			h := rig.liveHelper(t, helpercontainer.KindDB)
			assert.NilError(t, rig.c.Client.ContainerKill(context.Background(), h.ID, "KILL"))
		}, runOptions{})
		rig.assertPutBack(t, b, res, "failed", "database helper")
		assert.Check(t, is.Contains(reasonLine(res.stderr), "exited before it was done: it exited with code 137 (killed)"))
		assert.Check(t, is.Equal(strings.Count(res.stderr, "started database helper "), 2), "a second helper for the rollback:\n%s", res.stderr)
	})

	// Every connection to the engine closes, the database helper's among
	// them; new ones go through, so the rollback can start a new helper.
	t.Run("engine connection dropped", func(t *testing.T) {
		p := newEngineProxy(t)
		b, res := rig.faultDuringRestore(t, func(t *testing.T, b *pluginRun) {
			p.drop()
		}, runOptions{env: []string{"DOCKER_HOST=" + p.Host()}})
		assert.Assert(t, p.Dropped() > 0, "the proxy closed no connection")
		t.Logf("dropped %d connection(s)", p.Dropped())
		rig.assertPutBack(t, b, res, "failed", "connection")
		assert.Check(t, is.Equal(strings.Count(res.stderr, "started database helper "), 2), "a second helper for the rollback:\n%s", res.stderr)
	})

	// Putting back fails too while RethinkDB is down: the reason gives the
	// command that finishes by hand, which the test runs once RethinkDB is
	// up again.
	t.Run("rethinkdb killed", func(t *testing.T) {
		killed := false
		defer func() {
			if killed {
				rig.c.Start(t, rig.rep.ID, "rethinkdb")
			}
		}()
		safetyDir := t.TempDir()
		b, res := rig.faultDuringRestore(t, func(t *testing.T, b *pluginRun) {
			rig.c.Kill(t, rig.rep.ID, "rethinkdb")
			killed = true
		}, runOptions{viaDocker: true}, "--safety-dir", safetyDir)
		safety := rig.safetyAnnounced(t, res.stderr, safetyDir)
		byHand := rig.assertByHand(t, res, safety)
		// The plugin started the api and the registry again; RethinkDB is
		// the test's to start.
		rig.assertStoppedAndStarted(t, res)
		assertNoHelpers(t, rig.c)
		for comp, name := range rig.rep.Containers {
			info, err := rig.c.Client.ContainerInspect(context.Background(), name)
			assert.NilError(t, err)
			assert.Check(t, info.State.Running == (comp != "rethinkdb"), "%s is %s", name, info.State.Status)
		}
		assertDir(t, b.dir, filepath.Base(b.out))
		assertDir(t, safetyDir, filepath.Base(safety))

		rig.c.Start(t, rig.rep.ID, "rethinkdb")
		killed = false
		rig.c.WaitReady(t, rig.rep.ID)
		t.Logf("before the command by hand: %s", rig.diff(rig.before, rig.snapshot(t)))
		t.Logf("by hand: %s", byHand)
		words := shellWords(t, byHand)
		assert.Assert(t, len(words) > 1 && words[0] == "docker", "the command by hand runs docker: %q", byHand)
		hand := docker(t, rig.cfg, nil, words[1:]...)
		assert.Check(t, is.Equal(hand.code, 0), "the command by hand failed: %s\nstderr:\n%s", byHand, hand.stderr)
		assert.Check(t, is.Contains(hand.stdout, "undid a metadata restore of "+res.out+" into replica "+rig.rep.ID+": put back from the safety backup "+safety))
		rig.assertRestoreLeftNothing(t, b, res, safety)
	})
}

// startRestore restores rig.backup, linked into dir as backup.tar so that
// the safety backup goes beside it: rig.command, then extra, then FILE.
func (rig *faultRig) startRestore(t *testing.T, dir string, o runOptions, extra ...string) *pluginRun {
	t.Helper()
	in := filepath.Join(dir, "backup.tar")
	if err := os.Link(rig.backup, in); err != nil {
		data, rerr := os.ReadFile(rig.backup)
		assert.NilError(t, rerr)
		assert.NilError(t, os.WriteFile(in, data, 0o600))
	}
	args := append(append(slices.Clone(rig.command), extra...), in)
	return rig.start(t, dir, in, o, args...)
}

// faultDuringRestore starts a restore, applies the fault once it loads,
// and waits for the plugin to exit.
func (rig *faultRig) faultDuringRestore(t *testing.T, fault func(*testing.T, *pluginRun), o runOptions, extra ...string) (*pluginRun, faultResult) {
	t.Helper()
	b := rig.startRestore(t, t.TempDir(), o, extra...)
	rig.waitLoading(t, b)
	fault(t, b)
	return b, b.wait(t)
}

// waitLoading waits until the restore loads: it stopped the replica's
// other DTR containers, dropped and created dtr2.events again, and wrote
// some but not all of its rows (the test's own connection counts them). A
// restore that ends, or loads all of events, first fails the test: the
// fault would come too late.
func (rig *faultRig) waitLoading(t *testing.T, b *pluginRun) {
	t.Helper()
	driver := rig.c.Connect(t, rig.rep.ID)
	total := len(rig.before.(map[string]dtrtest.TableSnapshot)["dtr2.events"].Docs)
	var stops []string
	for comp, name := range rig.rep.Containers {
		if comp != "rethinkdb" {
			stops = append(stops, "stopped "+name)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	dropped := false // events was seen gone or short after the stops
	for {
		select {
		case <-b.done:
			t.Fatalf("the restore ended (%v) before it loaded: the fault would come too late\nstderr: %s", b.err, b.stderr)
		default:
		}
		stderr := b.stderr.String()
		stopped := true
		for _, s := range stops {
			stopped = stopped && strings.Contains(stderr, s)
		}
		if stopped {
			var n int
			err := r.DB("dtr2").Table("events").Count().ReadOne(&n, driver)
			switch {
			case err != nil || n == 0:
				dropped = true
			case n < total:
				t.Logf("loading: dtr2.events holds %d of %d rows", n, total)
				return
			case dropped:
				t.Fatalf("the restore loaded all of dtr2.events before the test saw it part way: the fault would come too late\nstderr: %s", stderr)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restore never got to loading; stderr: %s", stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// safetyAnnounced is the safety backup the restore announced, which must
// be in dir and private.
func (rig *faultRig) safetyAnnounced(t *testing.T, stderr, dir string) string {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(`(?m)^safety backup of the %d tables this restore replaces: (\S+)$`, len(dtrtest.Tables)))
	m := re.FindStringSubmatch(stderr)
	assert.Assert(t, m != nil, "no safety backup announced:\n%s", stderr)
	safety := m[1]
	assert.Check(t, is.Equal(filepath.Dir(safety), dir), "where the safety backup went")
	assert.Check(t, strings.HasPrefix(filepath.Base(safety), "safety-metadata-"+rig.rep.ID+"-"), "the safety backup's name: %s", safety)
	if st, err := os.Stat(safety); assert.Check(t, err) {
		assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o600)), "the safety backup's mode")
	}
	return safety
}

// assertPutBack: a non-zero exit whose last stderr line is "restore of FILE
// <what>, and the tables it replaced were put back from the safety backup
// PATH: <cause>", the cause naming each of want; then nothing left and the
// data as before.
func (rig *faultRig) assertPutBack(t *testing.T, b *pluginRun, res faultResult, what string, want ...string) {
	t.Helper()
	assert.Check(t, res.code != 0, "the restore succeeded despite the fault; stdout: %s\nstderr: %s", res.stdout, res.stderr)
	safety := rig.safetyAnnounced(t, res.stderr, b.dir)
	last := reasonLine(res.stderr)
	t.Logf("exit %d: %s", res.code, last)
	prefix := fmt.Sprintf("restore of %s %s, and the tables it replaced were put back from the safety backup %s: ", res.out, what, safety)
	if assert.Check(t, strings.HasPrefix(last, prefix), "the last line of stderr is the reason, %q…; stderr:\n%s", prefix, res.stderr) {
		cause := strings.TrimPrefix(last, prefix)
		for _, w := range want {
			assert.Check(t, strings.Contains(strings.ToLower(cause), strings.ToLower(w)), "the cause names %q: %q", w, cause)
		}
	}
	rig.assertStoppedAndStarted(t, res)
	rig.assertRestoreLeftNothing(t, b, res, safety)
}

// assertByHand: a non-zero exit whose last stderr line is "restore of FILE
// failed (<cause>), and putting the safety backup back failed too (<err>):
// finish by hand, once the cause is fixed, with: <command>"; it returns the
// command, checked against what it should be.
func (rig *faultRig) assertByHand(t *testing.T, res faultResult, safety string) string {
	t.Helper()
	assert.Check(t, is.Equal(res.code, 3), "exit status 3, partly restored; stdout: %s\nstderr: %s", res.stdout, res.stderr)
	last := reasonLine(res.stderr)
	t.Logf("exit %d: %s", res.code, last)
	const sep = ": finish by hand, once the cause is fixed, with: "
	prefix := "restore of " + res.out + " failed ("
	head, command, found := strings.Cut(last, sep)
	assert.Assert(t, found && strings.HasPrefix(head, prefix) && strings.Contains(head, "), and putting the safety backup back failed too ("),
		"the last line of stderr is the reason, %q… (…)%s<command>; stderr:\n%s", prefix+"…), and putting the safety backup back failed too", sep, res.stderr)
	assert.Check(t, strings.Contains(strings.ToLower(head), "rethinkdb"), "the reason names RethinkDB: %q", head)
	// The restore's journal stays: --undo puts the safety backup back.
	want := fmt.Sprintf("docker dtr backup restore --undo --replica-id %s", rig.rep.ID)
	assert.Check(t, is.Equal(command, want), "the command by hand")
	return command
}

// assertStoppedAndStarted: the restore stopped the replica's DTR
// containers other than RethinkDB, and started them again.
func (rig *faultRig) assertStoppedAndStarted(t *testing.T, res faultResult) {
	t.Helper()
	for comp, name := range rig.rep.Containers {
		if comp == "rethinkdb" {
			assert.Check(t, !strings.Contains(res.stderr, "stopped "+name), "the restore stopped the database it restores into")
			continue
		}
		assert.Check(t, is.Contains(res.stderr, "stopped "+name))
		assert.Check(t, is.Contains(res.stderr, "started "+name+" again"))
	}
}

// assertRestoreLeftNothing: no helper, every DTR container running (and
// ready, for the next scenario), FILE and the safety backup alone in their
// directories, the data as before.
func (rig *faultRig) assertRestoreLeftNothing(t *testing.T, b *pluginRun, res faultResult, safety string) {
	t.Helper()
	if filepath.Dir(safety) == b.dir {
		assertDir(t, b.dir, filepath.Base(b.out), filepath.Base(safety))
	} else {
		assertDir(t, b.dir, filepath.Base(b.out))
		assertDir(t, filepath.Dir(safety), filepath.Base(safety))
	}
	rig.assertClean(t, "")
	rig.c.WaitReady(t, rig.rep.ID)
	after := rig.snapshot(t)
	if !reflect.DeepEqual(rig.before, after) {
		t.Errorf("the data is not as before: %s\nstderr of the restore:\n%s", rig.diff(rig.before, after), res.stderr)
	}
}

// assertDir: dir holds the names and nothing else (no temporary file).
func assertDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	assert.NilError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	sort.Strings(names)
	assert.Check(t, is.DeepEqual(left, names), "in %s", dir)
}

// shellWords splits a command line a POSIX shell would: words apart on
// spaces, single-quoted parts kept whole.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, c := range line {
		switch {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			word.WriteRune(c)
		case c == '\'':
			quoted, inWord = true, true
		case c == ' ':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\' || c == '"' || c == '$' || c == '`':
			t.Fatalf("the command by hand has %q outside single quotes, which this test does not parse: %s", c, line)
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	assert.Assert(t, !quoted, "unterminated quote in %s", line)
	if inWord {
		words = append(words, word.String())
	}
	return words
}

// --- scenarios shared by the commands ---

// secretsAndModes runs a backup to the end, and while it runs inspects its
// helper container for key material and checks the temporary file's mode.
func (rig *faultRig) secretsAndModes(t *testing.T) {
	t.Run("secrets and file modes", func(t *testing.T) {
		dir := t.TempDir()
		kind := helpercontainer.KindDB
		if rig.command[1] == "images" {
			kind = helpercontainer.KindImages
		}
		b := rig.startBackup(t, dir, runOptions{})
		// The output is opened first, then the helper made; an image
		// helper lives for well under a second here: catch it at once.
		var info container.InspectResponse
		for info.ContainerJSONBase == nil {
			select {
			case <-b.done:
				t.Fatalf("the backup ended (%v) before its %s helper could be inspected; stderr: %s", b.err, kind, b.stderr)
			default:
			}
			for _, c := range helperContainers(t, rig.c) {
				if c.Labels[helpercontainer.LabelKind] != kind || (leased(kind) && c.State != "running") {
					continue
				}
				// Listed a moment before it can be inspected, while the
				// engine is still creating it.
				var err error
				if info, err = rig.c.Client.ContainerInspect(context.Background(), c.ID); errdefs.IsNotFound(err) {
					continue
				}
				assert.NilError(t, err)
			}
		}
		rig.assertNoSecrets(t, info)
		tmp := b.tempFile()
		assert.Assert(t, tmp != "", "no temporary file beside %s while the backup runs", b.out)
		st, err := os.Stat(tmp)
		assert.NilError(t, err)
		assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600), "temporary file %s", tmp)

		res := b.wait(t)
		assert.Equal(t, res.code, 0, "the backup without a fault: %s", res.stderr)
		st, err = os.Stat(b.out)
		assert.NilError(t, err)
		assert.Equal(t, st.Mode().Perm(), os.FileMode(0o600), "the backup file")
		assert.NilError(t, os.Remove(b.out))
		rig.assertClean(t, dir)
	})
}

// outputDirScenarios: a full and a read-only output directory.
func (rig *faultRig) outputDirScenarios(t *testing.T) {
	t.Run("output directory full", func(t *testing.T) {
		dir := outputDirFull(t)
		b := rig.startBackup(t, dir, runOptions{})
		res := b.wait(t)
		rig.assertFailed(t, res, "no space left on device")
		rig.assertNoOutput(t, b)
		rig.assertUnchanged(t)
	})

	// A directory that cannot be written fails before anything happens on
	// the engine: the plugin goes through a proxy that counts connections.
	t.Run("output directory read-only", func(t *testing.T) {
		dir := outputDirReadOnly(t)
		p := newEngineProxy(t)
		since := time.Now()
		b := rig.startBackup(t, dir, runOptions{env: []string{"DOCKER_HOST=" + p.Host()}})
		res := b.wait(t)
		t.Logf("exit %d: %s", res.code, reasonLine(res.stderr))
		assert.Check(t, res.code != 0, "exit status")
		assert.Check(t, is.Equal(strings.Count(res.stderr, "\n"), 1), "one line, no progress: %q", res.stderr)
		assert.Check(t, is.Contains(res.stderr, b.out), "names the file")
		assert.Check(t, is.Contains(res.stderr, "read-only file system"))
		assert.Check(t, is.Equal(p.Accepted(), 0), "the plugin connected to the engine before finding it cannot write %s (requests: %v)", b.out, p.Requests())
		assert.Check(t, is.DeepEqual(helperEvents(t, rig.c, since), []string(nil)), "helper containers made")
		rig.assertNoOutput(t, b)
		rig.assertClean(t, "")
	})
}

// signalScenarios interrupt a backup under way: SIGINT and SIGTERM sent to
// the plugin run directly, and to the docker CLI running it (which passes
// them on by closing the plugin's socket).
func (rig *faultRig) signalScenarios(t *testing.T) {
	forEachSignal(t, func(t *testing.T, sig syscall.Signal, via bool) {
		res := rig.killDuringBackupResult(t, func(t *testing.T, b *pluginRun) {
			assert.NilError(t, b.cmd.Process.Signal(sig))
		}, runOptions{viaDocker: via})
		rig.assertFailed(t, res, "was not written: interrupted")
		assert.Check(t, is.Equal(res.code, 130), "exit status 130, interrupted: %s", res.stderr)
		rig.assertUnchanged(t)
	})
}

// forEachSignal runs a subtest for SIGINT and SIGTERM, sent to the plugin
// run directly and to the docker CLI running it.
func forEachSignal(t *testing.T, f func(t *testing.T, sig syscall.Signal, viaDocker bool)) {
	for _, via := range []bool{false, true} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			name := sig.String() + " to the plugin"
			if via {
				name = sig.String() + " to docker"
			}
			t.Run(name, func(t *testing.T) { f(t, sig, via) })
		}
	}
}

// engineConnectionDropped puts a proxy between the plugin and the engine,
// and once the backup streams closes every connection open at that moment;
// new connections go through, so the plugin can remove its helper.
func (rig *faultRig) engineConnectionDropped(t *testing.T) {
	p := newEngineProxy(t)
	dir := t.TempDir()
	// What passes before the bulk of the data (listing, inspecting, the
	// certificates) is well under a megabyte.
	p.DropAfter(rig.underWay + 1<<20)
	b := rig.startBackup(t, dir, runOptions{env: []string{"DOCKER_HOST=" + p.Host()}})
	res := b.wait(t)
	assert.Assert(t, p.Dropped() > 0, "the proxy never dropped a connection (%d bytes from the engine); exit %d: %s", p.Down(), res.code, res.stderr)
	t.Logf("dropped %d connection(s) after %d bytes from the engine; requests: %s\nstderr:\n%s", p.Dropped(), p.Down(), strings.Join(p.Requests(), "\n"), res.stderr)
	for _, req := range p.Unanswered() {
		t.Logf("no answer came to %q: it went over a connection the drop closed, and was not sent again", req)
	}
	// A bare "unexpected EOF" reads like a short file in the registry: the
	// reason says a connection was lost.
	rig.assertFailed(t, res, "connection")
	rig.assertNoOutput(t, b)
	rig.assertUnchanged(t)
}

// killDuringBackup starts a backup, waits until its temporary file passes
// rig.underWay bytes, applies the fault, and checks the failure: non-zero
// exit, a last stderr line naming want, nothing left, the DTR as it was.
func (rig *faultRig) killDuringBackup(t *testing.T, fault func(*testing.T, *pluginRun), want string, opts ...runOptions) {
	t.Helper()
	res := rig.killDuringBackupResult(t, fault, opts...)
	rig.assertFailed(t, res, want)
	rig.assertUnchanged(t)
}

// killDuringBackupResult is killDuringBackup up to the plugin's exit, for
// faults whose victim the test restarts before checking.
func (rig *faultRig) killDuringBackupResult(t *testing.T, fault func(*testing.T, *pluginRun), opts ...runOptions) faultResult {
	t.Helper()
	var o runOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	dir := t.TempDir()
	b := rig.startBackup(t, dir, o)
	b.waitUnderWay(t, rig.underWay)
	fault(t, b)
	res := b.wait(t)
	if !o.keepOutput || res.code != 0 {
		rig.assertNoOutput(t, b)
	}
	return res
}

// --- running the plugin ---

type runOptions struct {
	viaDocker  bool     // `docker dtr …` rather than the binary itself
	env        []string // added to the environment
	keepOutput bool     // killDuringBackupResult leaves a successful backup's file
}

// pluginRun is the plugin running: a backup writing -o dir/backup.tar, or
// a restore of dir/backup.tar (out is FILE either way).
type pluginRun struct {
	cmd            *exec.Cmd
	dir, out       string
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// faultResult is how a backup ended, and its -o path.
type faultResult struct {
	result
	out string
}

func (rig *faultRig) startBackup(t *testing.T, dir string, o runOptions) *pluginRun {
	t.Helper()
	out := filepath.Join(dir, "backup.tar")
	return rig.start(t, dir, out, o, append(slices.Clone(rig.command), "-o", out)...)
}

// start runs the plugin with args; out is the FILE it writes or reads.
func (rig *faultRig) start(t *testing.T, dir, out string, o runOptions, args ...string) *pluginRun {
	t.Helper()
	var cmd *exec.Cmd
	if o.viaDocker {
		cmd = exec.Command("docker", append([]string{"--config", rig.cfg, "dtr"}, args...)...)
	} else {
		cmd = exec.Command(rig.bin, args...)
	}
	cmd.Env = append(append(os.Environ(), "DOCKER_CONFIG="+rig.cfg), o.env...)
	b := &pluginRun{cmd: cmd, dir: dir, out: out, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.stdout, b.stderr
	assert.NilError(t, cmd.Start())
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	// A test that stops early interrupts the plugin, so that it removes its
	// helper; a SIGKILL would leave it to spoil the next scenarios.
	t.Cleanup(func() {
		select {
		case <-b.done:
			return
		default:
		}
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-b.done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// waitUnderWay waits until the temporary file beside the output passes
// size bytes, and returns its path. A backup that ends first fails the test.
func (b *pluginRun) waitUnderWay(t *testing.T, size int64) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-b.done:
			t.Fatalf("the backup ended (%v) before it was %d bytes under way: the fault would come too late\nstderr: %s", b.err, size, b.stderr)
		default:
		}
		if tmp := b.tempFile(); tmp != "" {
			if info, err := os.Stat(tmp); err == nil && info.Size() >= size {
				return tmp
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup never got %d bytes under way; stderr: %s", size, b.stderr)
		}
		time.Sleep(time.Millisecond)
	}
}

// tempFile is the path of the temporary file beside the output, or "".
func (b *pluginRun) tempFile() string {
	prefix := "." + filepath.Base(b.out) + ".tmp-"
	entries, _ := os.ReadDir(b.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			return filepath.Join(b.dir, e.Name())
		}
	}
	return ""
}

// wait waits for the plugin to exit; one that does not within faultWait
// hangs, and fails the test.
func (b *pluginRun) wait(t *testing.T) faultResult {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(faultWait):
		b.cmd.Process.Kill()
		<-b.done
		t.Fatalf("the plugin hung: still running %s after the fault, killed; stderr: %s", faultWait, b.stderr)
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(b.err, &exit) {
		code = exit.ExitCode()
	} else {
		assert.NilError(t, b.err)
	}
	return faultResult{result{b.stdout.String(), b.stderr.String(), code}, b.out}
}

// --- what every scenario checks ---

// assertFailed: a non-zero exit whose last stderr line is the one-line
// reason, "backup failed, FILE was not written: …", naming each of want.
func (rig *faultRig) assertFailed(t *testing.T, res faultResult, want ...string) {
	t.Helper()
	assert.Check(t, res.code != 0, "the backup succeeded despite the fault; stdout: %s\nstderr: %s", res.stdout, res.stderr)
	last := reasonLine(res.stderr)
	t.Logf("exit %d: %s", res.code, last)
	prefix := "backup failed, " + res.out + " was not written: "
	assert.Check(t, strings.HasPrefix(last, prefix), "the last line of stderr is the reason, %q…; stderr:\n%s", prefix, res.stderr)
	// The paths hold the test's name: leave them out of what must be named.
	reason := strings.ReplaceAll(last, filepath.Dir(res.out), "DIR")
	for _, w := range want {
		assert.Check(t, strings.Contains(strings.ToLower(reason), strings.ToLower(w)), "the reason names %q: %q", w, last)
	}
}

// reasonLine is the last line of stderr: the one-line reason.
func reasonLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// assertNoOutput: neither the file nor a temporary file beside it.
func (rig *faultRig) assertNoOutput(t *testing.T, b *pluginRun) {
	t.Helper()
	_, err := os.Stat(b.out)
	assert.Check(t, errors.Is(err, os.ErrNotExist), "%s exists after a failed backup", b.out)
	left, err := os.ReadDir(b.dir)
	assert.Check(t, err)
	var names []string
	for _, e := range left {
		if e.Name() != "lost+found" {
			names = append(names, e.Name())
		}
	}
	assert.Check(t, is.Len(names, 0), "left in the output directory: %v", names)
}

// assertUnchanged: no helper, every DTR container running, the data as it
// was before.
func (rig *faultRig) assertUnchanged(t *testing.T) {
	t.Helper()
	rig.assertClean(t, "")
	after := rig.snapshot(t)
	if !reflect.DeepEqual(rig.before, after) {
		t.Errorf("the data changed: %s", rig.diff(rig.before, after))
	}
}

// assertClean: no helper container left (any left is removed after the
// failure, so later scenarios start clean), every DTR container running,
// and nothing in dir unless dir is "".
func (rig *faultRig) assertClean(t *testing.T, dir string) {
	t.Helper()
	if left := helpersLeft(t, rig.c); len(left) > 0 {
		var names []string
		for _, h := range left {
			names = append(names, fmt.Sprintf("%s (%s, %s)", strings.TrimPrefix(h.Names[0], "/"), h.Labels[helpercontainer.LabelKind], h.State))
			rig.c.Client.ContainerRemove(context.Background(), h.ID, container.RemoveOptions{Force: true})
		}
		t.Errorf("helper containers left behind: %s", strings.Join(names, ", "))
	}
	for _, name := range rig.rep.Containers {
		info, err := rig.c.Client.ContainerInspect(context.Background(), name)
		if assert.Check(t, err) {
			assert.Check(t, info.State.Running, "%s is %s", name, info.State.Status)
		}
	}
	if dir != "" {
		left, _ := os.ReadDir(dir)
		assert.Check(t, is.Len(left, 0), "left in %s: %v", dir, left)
	}
}

// liveHelper returns the plugin's helper of the kind, which must exist now.
func (rig *faultRig) liveHelper(t *testing.T, kind string) container.Summary {
	t.Helper()
	var found []container.Summary
	for _, h := range helperContainers(t, rig.c) {
		if h.Labels[helpercontainer.LabelKind] == kind && (!leased(kind) || h.State == "running") {
			found = append(found, h)
		}
	}
	assert.Equal(t, len(found), 1, "one %s helper while the backup runs: %+v", kind, found)
	return found[0]
}

// assertNoSecrets: the helper's definition holds no key material, and it
// keeps no logs.
func (rig *faultRig) assertNoSecrets(t *testing.T, info container.InspectResponse) {
	t.Helper()
	assert.Check(t, is.Equal(info.HostConfig.LogConfig.Type, "none"), "the helper keeps no logs")
	key, err := os.ReadFile(rig.c.KeyFile)
	assert.NilError(t, err)
	var secrets []string
	for _, line := range strings.Split(string(key), "\n") {
		if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	assert.Assert(t, len(secrets) > 0, "%s holds a PEM key", rig.c.KeyFile)
	secrets = append(secrets, "PRIVATE KEY", strings.Join(secrets, ""))
	whole, err := json.Marshal(info)
	assert.NilError(t, err)
	parts := map[string]any{
		"Env": info.Config.Env, "Cmd": info.Config.Cmd, "Entrypoint": info.Config.Entrypoint,
		"Labels": info.Config.Labels, "HostConfig": info.HostConfig, "the whole inspect": json.RawMessage(whole),
	}
	for what, v := range parts {
		b, err := json.Marshal(v)
		assert.NilError(t, err)
		for _, s := range secrets {
			assert.Check(t, !strings.Contains(string(b), s), "%s of helper %s holds key material (%.20s…)", what, info.Name, s)
		}
	}
}

// helperEvents lists what happened to the plugin's helper containers since.
func helperEvents(t *testing.T, c *dtrfixture.Cluster, since time.Time) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ts := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	msgs, errs := c.Client.Events(ctx, events.ListOptions{
		Since: ts(since), Until: ts(time.Now()),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", helpercontainer.LabelKind)),
	})
	var out []string
	for {
		select {
		case m := <-msgs:
			out = append(out, fmt.Sprintf("%s %s", m.Action, m.Actor.Attributes["name"]))
		case err := <-errs:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("reading engine events: %v", err)
			}
			return out
		}
	}
}

func snapshotDiff(before, after any) string {
	b, a := before.(map[string]dtrtest.TableSnapshot), after.(map[string]dtrtest.TableSnapshot)
	var out []string
	for _, name := range unionKeys(b, a) {
		tb, inB := b[name]
		ta, inA := a[name]
		switch {
		case !inA:
			out = append(out, name+" is gone")
		case !inB:
			out = append(out, name+" is new")
		case !reflect.DeepEqual(tb, ta):
			changed := 0
			for id, d := range tb.Docs {
				if !reflect.DeepEqual(d, ta.Docs[id]) {
					changed++
				}
			}
			out = append(out, fmt.Sprintf("%s: %d rows before, %d after, %d missing or changed", name, len(tb.Docs), len(ta.Docs), changed))
		}
	}
	if len(a) == 0 {
		out = append(out, "RethinkDB holds no database at all: the restarted server lost its data (no persistence)")
	}
	return strings.Join(out, "; ")
}

func filesDiff(before, after any) string {
	b, a := before.(map[string]string), after.(map[string]string)
	var out []string
	for _, name := range unionKeys(b, a) {
		if b[name] != a[name] {
			out = append(out, fmt.Sprintf("%s: %.12q -> %.12q", name, b[name], a[name]))
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return strings.Join(out, "; ")
}

func unionKeys[V any](ms ...map[string]V) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// --- output directories ---

// outputDirFull is a 1 MiB tmpfs: a backup fills it.
func outputDirFull(t *testing.T) string {
	return mountTmpfs(t, "size=1m,mode=0755")
}

// outputDirReadOnly is a read-only tmpfs: chmod does not stop root.
func outputDirReadOnly(t *testing.T) string {
	return mountTmpfs(t, "ro,size=1m,mode=0755")
}

// mountTmpfs mounts a tmpfs on a fresh directory, unmounted on cleanup.
// Without root or mount it skips, except under CI.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipUnlessCI(t, "mounting a tmpfs for the output directory needs root")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "docker-dtr-e2e", dir).CombinedOutput()
	if err != nil {
		skipUnlessCI(t, "mount -t tmpfs -o %s: %v: %s", opts, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func skipUnlessCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// --- the engine connection ---

// engineProxy is a unix socket that forwards each connection to the
// engine's. DropAfter closes every connection open when that many bytes
// came from the engine in all; connections made after go through.
type engineProxy struct {
	ln       net.Listener
	upstream string
	dir      string

	down     atomic.Int64
	up       atomic.Int64
	dropAt   atomic.Int64
	dropping atomic.Bool // set before the first connection closes
	dropped  atomic.Int64
	dropOnce sync.Once

	// upLink and downLink, when set (Throttle), make the proxy a slow link.
	upLink, downLink *slowLink
	// eachRate, when set (ThrottleEach), gives each connection a slow link
	// of its own.
	eachRate float64

	mu       sync.Mutex
	conns    map[*proxyConn]bool
	accepted int
	requests []string // request and status lines seen, in order
	wg       sync.WaitGroup
}

type proxyConn struct {
	id             int
	client, engine net.Conn
}

func newEngineProxy(t testing.TB) *engineProxy {
	t.Helper()
	upstream := engineSocket(t)
	// Short: a socket path has about 100 bytes.
	dir, err := os.MkdirTemp("", "dtr-proxy-")
	assert.NilError(t, err)
	ln, err := net.Listen("unix", filepath.Join(dir, "docker.sock"))
	assert.NilError(t, err)
	p := &engineProxy{ln: ln, upstream: upstream, dir: dir, conns: map[*proxyConn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// engineSocket is the engine's unix socket, from DOCKER_HOST or the default.
func engineSocket(t testing.TB) string {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return "/var/run/docker.sock"
	}
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" {
		skipUnlessCI(t, "the engine proxy needs a unix socket; DOCKER_HOST is %s", host)
	}
	return u.Path
}

func (p *engineProxy) Host() string { return "unix://" + p.ln.Addr().String() }

// Throttle makes the proxy a slow link for the connections made after:
// rate bytes a second each way, every chunk delay late each way.
func (p *engineProxy) Throttle(rate float64, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.upLink, p.downLink = &slowLink{rate: rate, delay: delay}, &slowLink{rate: rate, delay: delay}
}

// ThrottleEach makes each connection made after a slow link of its own,
// at rate bytes a second each way: a slow stream holds back no other
// request, as a shared link's queue would.
func (p *engineProxy) ThrottleEach(rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.eachRate = rate
}

// writer is how the proxy writes one direction of a connection: w itself,
// or through the slow link; flush delivers what the link still holds.
func (p *engineProxy) writer(w io.Writer, link *slowLink) (io.Writer, func()) {
	if link == nil {
		return w, func() {}
	}
	pw := newPacedWriter(w, link)
	return pw, sync.OnceFunc(pw.flush)
}

// DropAfter arms the drop: once n bytes came from the engine.
func (p *engineProxy) DropAfter(n int64) { p.dropAt.Store(n) }

// Dropped is how many connections the drop closed.
func (p *engineProxy) Dropped() int64 { return p.dropped.Load() }

// Down is how many bytes came from the engine.
func (p *engineProxy) Down() int64 { return p.down.Load() }

// Up is how many bytes went to the engine.
func (p *engineProxy) Up() int64 { return p.up.Load() }

func (p *engineProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *engineProxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Unanswered are the requests noted after the drop whose connection carried
// no answer after them.
func (p *engineProxy) Unanswered() []string {
	var out []string
	reqs := p.Requests()
	for i, line := range reqs {
		if !strings.HasSuffix(line, " (after the drop)") || strings.Contains(line, " < ") {
			continue
		}
		conn, _, _ := strings.Cut(line, " ")
		answered := false
		for _, later := range reqs[i+1:] {
			answered = answered || strings.HasPrefix(later, conn+" < ")
		}
		if !answered {
			out = append(out, line)
		}
	}
	return out
}

func (p *engineProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		engine, err := net.Dial("unix", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.accepted++
		pc := &proxyConn{p.accepted, client, engine}
		p.conns[pc] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(pc)
	}
}

func (p *engineProxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		pc.client.Close()
		pc.engine.Close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	p.mu.Lock()
	upLink, downLink := p.upLink, p.downLink
	if p.eachRate > 0 {
		upLink, downLink = &slowLink{rate: p.eachRate}, &slowLink{rate: p.eachRate}
	}
	toEngine, flushUp := p.writer(pc.engine, upLink)
	toClient, flushDown := p.writer(pc.client, downLink)
	p.mu.Unlock()
	up := make(chan struct{})
	go func() { // plugin -> engine, noting the first request line
		defer close(up)
		defer flushUp()
		buf := make([]byte, 32<<10)
		for {
			n, err := pc.client.Read(buf)
			if n > 0 {
				p.note(pc, ">", buf[:n])
				if _, werr := toEngine.Write(buf[:n]); werr != nil {
					return
				}
				p.up.Add(int64(n))
			}
			if err != nil {
				flushUp()
				if uc, ok := pc.engine.(*net.UnixConn); ok {
					uc.CloseWrite()
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for { // engine -> plugin, counted
		n, err := pc.engine.Read(buf)
		if n > 0 {
			p.note(pc, "<", buf[:n])
			if _, werr := toClient.Write(buf[:n]); werr != nil {
				break
			}
			if total := p.down.Add(int64(n)); p.dropAt.Load() > 0 && total >= p.dropAt.Load() {
				p.drop()
			}
		}
		if err != nil {
			flushDown()
			if uc, ok := pc.client.(*net.UnixConn); ok {
				uc.CloseWrite()
			}
			break
		}
	}
	flushDown()
	<-up
}

// note keeps the request or status line of a chunk that starts with one
// (a request's or response's headers go in one write, so this sees most of
// them), as "#conn > GET /…" or "#conn < HTTP/1.1 200 OK", for messages.
func (p *engineProxy) note(pc *proxyConn, dir string, b []byte) {
	line, _, _ := strings.Cut(string(b[:min(len(b), 300)]), "\r\n")
	first, _, _ := strings.Cut(line, " ")
	request := slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "DELETE"}, first) && strings.HasSuffix(line, " HTTP/1.1")
	if !request && first != "HTTP/1.1" {
		return
	}
	line = fmt.Sprintf("#%d %s %s", pc.id, dir, line)
	if p.dropping.Load() {
		line += " (after the drop)"
	}
	p.mu.Lock()
	p.requests = append(p.requests, line)
	p.mu.Unlock()
}

// drop closes every connection open now, once.
func (p *engineProxy) drop() {
	p.dropOnce.Do(func() {
		p.dropping.Store(true)
		p.mu.Lock()
		defer p.mu.Unlock()
		for pc := range p.conns {
			pc.client.Close()
			pc.engine.Close()
			p.dropped.Add(1)
		}
	})
}

func (p *engineProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for pc := range p.conns {
		pc.client.Close()
		pc.engine.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	os.RemoveAll(p.dir)
}
