package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrfixture"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A run killed with SIGKILL (an OOM kill, a dropped session behind kill
// -9) through the docker CLI, and the next command finding and finishing
// its job (issue 17):
//
//   - a backup killed mid-write (create through the context, images):
//     the next backup into the directory removes its temporary file, and
//     says so (create direct: TestKilledRunsLeaveNoPlaintext);
//   - a restore killed while it loads or writes: DTR's containers stay
//     stopped and the target half written, and the journal it wrote says
//     so: status exits 1 naming it and the command to run, backups are
//     refused, and `backup restore --undo` or `--resume` brings the
//     containers up with the right data, and removes the journal.

// killPlugin SIGKILLs the docker-dtr process that the docker CLI of b
// started, and waits for the CLI to end.
func (b *pluginRun) killPlugin(t *testing.T) {
	t.Helper()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		pid = pluginUnder(b.cmd.Process.Pid)
		assert.Assert(t, pid != 0 || time.Now().Before(deadline), "no plugin process under the docker CLI")
	}
	assert.NilError(t, syscall.Kill(pid, syscall.SIGKILL))
	res := b.wait(t)
	assert.Assert(t, res.code != 0, "the docker CLI of a killed plugin exited 0")
}

// killedBackupSwept: a backup (args, writing out) killed through the
// docker CLI mid-write leaves its temporary file, which the next one into
// the directory removes, and says so.
func killedBackupSwept(t *testing.T, rig *faultRig, out string, args ...string) {
	t.Helper()
	dir := filepath.Dir(out)
	cmd := append(slices.Clone(args), "-o", out)
	b := rig.start(t, dir, out, runOptions{viaDocker: true}, cmd...)
	tmp := b.waitUnderWay(t, rig.underWay)
	b.killPlugin(t)
	assert.DeepEqual(t, names(t, dir), []string{filepath.Base(tmp)})
	next := docker(t, rig.cfg, nil, append([]string{"dtr"}, cmd...)...)
	assert.Equal(t, next.code, 0, next.stderr)
	assert.Check(t, is.Contains(next.stderr, "removed "+tmp+", the temporary file of a backup that was killed"))
	assert.DeepEqual(t, names(t, dir), []string{filepath.Base(out)})
}

// statusReports: status exits 1, names the unfinished restore of file
// (kind "a metadata restore", "an image restore") and the commands that
// finish it, in text and in JSON.
func statusReports(t *testing.T, rig *faultRig, kind, file string) {
	t.Helper()
	id := rig.rep.ID
	st := docker(t, rig.cfg, nil, "dtr", "status")
	assert.Equal(t, st.code, 1, "status with an unfinished restore: %s", st.stdout)
	assert.Check(t, is.Contains(st.stdout, "UNFINISHED RESTORE: "+kind+" of "+file+" into replica "+id+", started "))
	assert.Check(t, is.Contains(st.stdout, ", was interrupted: "))
	last := lastLine(st.stderr)
	assert.Check(t, is.Contains(last, "(journal: container "+nodejournal.NamePrefix+id+"); finish it with: docker dtr backup restore --resume --replica-id "+id+
		", or put back what it replaced with: docker dtr backup restore --undo --replica-id "+id), "status's error: %s", st.stderr)

	js := docker(t, rig.cfg, nil, "dtr", "status", "--format", "json")
	assert.Equal(t, js.code, 1)
	var rep struct {
		Unfinished []struct {
			Replica, Backup, State, Resume, Undo string
			Stopped                              []string
		} `json:"unfinishedRestores"`
	}
	assert.NilError(t, json.Unmarshal([]byte(js.stdout), &rep), js.stdout)
	assert.Assert(t, is.Len(rep.Unfinished, 1))
	u := rep.Unfinished[0]
	assert.Check(t, is.Equal(u.Replica, id))
	assert.Check(t, is.Equal(u.Backup, file))
	assert.Check(t, is.Equal(u.State, "interrupted"))
	assert.Check(t, is.Equal(u.Resume, "docker dtr backup restore --resume --replica-id "+id))
	assert.Check(t, len(u.Stopped) > 0, "the containers it stopped: %v", u.Stopped)
}

// statusClear: no journal on the cluster.
func statusClear(t *testing.T, rig *faultRig) {
	t.Helper()
	js := docker(t, rig.cfg, nil, "dtr", "status", "--format", "json")
	assert.Check(t, is.Contains(js.stdout, `"unfinishedRestores": []`), js.stdout)
	list, err := rig.c.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", nodejournal.LabelJournal))})
	assert.NilError(t, err)
	assert.Check(t, is.Len(list, 0), "journals left")
}

// assertStopped: the replica's containers other than RethinkDB are not
// running (a killed restore stopped them).
func assertStopped(t *testing.T, rig *faultRig, keep ...string) {
	t.Helper()
	for comp, name := range rig.rep.Containers {
		if comp == "rethinkdb" || slices.Contains(keep, comp) {
			continue
		}
		info, err := rig.c.Client.ContainerInspect(context.Background(), name)
		assert.NilError(t, err)
		assert.Check(t, !info.State.Running, "%s runs after the killed restore stopped it", name)
	}
}

func assertAllRunning(t *testing.T, rig *faultRig) {
	t.Helper()
	for _, name := range rig.rep.Containers {
		assertRunning(t, rig.c, name)
	}
}

func TestKilledMetadataRunsFinishedByNext(t *testing.T) {
	rig := restoreRig(t)

	t.Run("backup create through the context", func(t *testing.T) {
		underWay := rig.underWay
		rig.underWay = 1 << 20
		defer func() { rig.underWay = underWay }()
		killedBackupSwept(t, rig, filepath.Join(t.TempDir(), "backup.tar"), "backup", "create")
	})

	// A row written after the backup: what the restore loads and what its
	// undo puts back differ.
	backup := rig.before
	_, err := r.DB("dtr2").Table("events").Insert(map[string]any{"id": "after-the-backup"}).RunWrite(rig.c.Connect(t, rig.rep.ID))
	assert.NilError(t, err)
	held := rig.snapshot(t)

	for _, c := range []struct {
		flag string
		want any
	}{{"--undo", held}, {"--resume", backup}} {
		t.Run("restore killed while loading, then "+c.flag, func(t *testing.T) {
			b := rig.startRestore(t, t.TempDir(), runOptions{viaDocker: true})
			rig.waitLoading(t, b)
			b.killPlugin(t)
			assertStopped(t, rig)
			statusReports(t, rig, "a metadata restore", b.out)

			next := docker(t, rig.cfg, nil, "dtr", "backup", "create", "-o", filepath.Join(t.TempDir(), "next.tar"))
			assert.Equal(t, next.code, 1, next.stderr)
			assert.Check(t, is.Contains(lastLine(next.stderr), "refusing to back up: a metadata restore of "+b.out+" into replica "+rig.rep.ID))
			again := docker(t, rig.cfg, nil, "dtr", "backup", "restore", "--force", b.out)
			assert.Equal(t, again.code, 1, again.stderr)
			assert.Check(t, is.Contains(lastLine(again.stderr), "refusing to restore, nothing was changed: a metadata restore of "+b.out))

			// The only journal on the cluster: no --replica-id needed.
			began := time.Now()
			res := docker(t, rig.cfg, nil, "dtr", "backup", "restore", c.flag)
			assert.Equal(t, res.code, 0, res.stderr)
			t.Logf("%s took %s", c.flag, time.Since(began).Round(time.Millisecond))
			assertAllRunning(t, rig)
			if diff := rig.diff(c.want, rig.snapshot(t)); diff != "" {
				t.Errorf("after %s: %s", c.flag, diff)
			}
			statusClear(t, rig)
			assertNoHelpers(t, rig.c)
		})
	}

	// Issue 23: an encrypted backup's restore, killed while it loads
	// through the context, holds no file in $TMPDIR (each pass decrypts
	// the file anew) and leaves none; --undo with the passphrase puts the
	// encrypted safety backup back.
	t.Run("encrypted restore killed while loading, then --undo", func(t *testing.T) {
		dir, tmp := t.TempDir(), t.TempDir()
		now := rig.snapshot(t) // what the safety backup holds
		pass := filepath.Join(t.TempDir(), "passphrase")
		assert.NilError(t, os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600))
		data, err := os.ReadFile(rig.backup)
		assert.NilError(t, err)
		in := filepath.Join(dir, "backup.tar.gpg")
		sealed, err := backupfile.Create(in, nil, &crypt.Recipients{Passphrase: []byte("correct horse battery staple")}, false)
		assert.NilError(t, err)
		_, err = sealed.Write(data)
		assert.NilError(t, err)
		assert.NilError(t, sealed.Commit())

		args := append(slices.Clone(rig.command), "--passphrase-file", pass, in)
		b := rig.start(t, dir, in, runOptions{viaDocker: true, env: []string{"TMPDIR=" + tmp}}, args...)
		rig.waitLoading(t, b)
		pid := pluginUnder(b.cmd.Process.Pid)
		assert.Assert(t, pid != 0, "no plugin process; stderr: %s", b.stderr)
		assert.Equal(t, openUnder(pid, tmp), int64(-1), "the restore holds a file in $TMPDIR while it loads; stderr: %s", b.stderr)
		b.killPlugin(t)
		assertEmpty(t, tmp)
		assertStopped(t, rig)
		for _, n := range names(t, dir) {
			assert.Assert(t, !strings.Contains(n, ".tmp-"), "a temporary file beside the backup: %s", n)
		}

		res := docker(t, rig.cfg, nil, "dtr", "backup", "restore", "--undo", "--passphrase-file", pass)
		assert.Equal(t, res.code, 0, res.stderr)
		assertAllRunning(t, rig)
		if diff := rig.diff(now, rig.snapshot(t)); diff != "" {
			t.Errorf("after --undo: %s", diff)
		}
		statusClear(t, rig)
		assertNoHelpers(t, rig.c)
	})
}

func TestKilledImageRunsFinishedByNext(t *testing.T) {
	rig := imagesRig(t)
	vol := "dtr-registry-" + rig.rep.ID
	out := filepath.Join(t.TempDir(), "backup-images.tar")
	t.Run("backup images", func(t *testing.T) {
		killedBackupSwept(t, rig, out, "backup", "images")
	})
	assertNoHelpers(t, rig.c)
	backup := rig.before.(map[string]string)

	putFile(t, rig.c, vol, "zz-after-the-backup", "added after the backup")
	held := dtrfixture.VolumeFiles(t, rig.c.Client, vol)
	// Another backup, given in the killed one's place to --resume.
	other := filepath.Join(t.TempDir(), "other.tar")
	res := docker(t, rig.cfg, nil, "dtr", "backup", "images", "-q", "-o", other)
	assert.Equal(t, res.code, 0, res.stderr)

	for _, flag := range []string{"--undo", "--resume"} {
		t.Run("restore killed while writing, then "+flag, func(t *testing.T) {
			// The upload into the volume stalls part way, as on a slow
			// link, so that the kill comes while it writes.
			killRestoreWhileWriting(t, rig, out)
			assertStopped(t, rig)
			now := dtrfixture.VolumeFiles(t, rig.c.Client, vol)
			t.Logf("killed: the volume holds %d files (%d before, %d in the backup): %s",
				len(now), len(held), len(backup), filesDiff(held, now))
			assert.Check(t, filesDiff(held, now) != "", "the kill came before anything was written")
			statusReports(t, rig, "an image restore", out)

			next := docker(t, rig.cfg, nil, "dtr", "backup", "images", "-o", filepath.Join(t.TempDir(), "next.tar"))
			assert.Equal(t, next.code, 1, next.stderr)
			assert.Check(t, is.Contains(lastLine(next.stderr), "refusing to back up: an image restore of "+out+" into replica "+rig.rep.ID))

			if flag == "--resume" {
				// The journal names the backup by its verified manifest:
				// another backup at the same path is refused, nothing
				// started or written.
				moved := out + ".moved"
				assert.NilError(t, os.Rename(out, moved))
				assert.NilError(t, os.Link(other, out))
				res := docker(t, rig.cfg, nil, "dtr", "backup", "restore", flag, "--replica-id", rig.rep.ID)
				assert.Equal(t, res.code, 1, res.stderr)
				assert.Check(t, is.Contains(lastLine(res.stderr), "--resume: "+out+" is not the backup the unfinished restore was loading: its manifest's sha256 is "))
				assertStopped(t, rig)
				assert.DeepEqual(t, dtrfixture.VolumeFiles(t, rig.c.Client, vol), now)
				assert.NilError(t, os.Rename(moved, out))
				// A journal from before, which named the backup by its
				// content's SHA-256, is still finished.
				asOldImageJournal(t, rig, out)
			}
			res := docker(t, rig.cfg, nil, "dtr", "backup", "restore", flag, "--replica-id", rig.rep.ID)
			assert.Equal(t, res.code, 0, res.stderr)
			assertAllRunning(t, rig)
			after := dtrfixture.VolumeFiles(t, rig.c.Client, vol)
			if flag == "--undo" {
				assert.DeepEqual(t, after, held)
			} else {
				for name, sum := range backup {
					assert.Check(t, is.Equal(after[name], sum), "%s after --resume", name)
				}
			}
			statusClear(t, rig)
			assertNoHelpers(t, rig.c)
		})
	}
}

// asOldImageJournal rewrites the journal of a killed image restore of
// backup as plugins before ManifestSHA256 wrote it: the backup named by
// the SHA-256 of its content.
func asOldImageJournal(t *testing.T, rig *faultRig, backup string) {
	t.Helper()
	ctx := context.Background()
	cl, err := dtr.Discover(ctx, rig.c.Client)
	assert.NilError(t, err)
	store := &nodejournal.Store{API: rig.c.Client, Replica: cl.Replica(rig.rep.ID)}
	assert.Assert(t, store.Replica != nil)
	rec, err := store.Load(ctx)
	assert.NilError(t, err)
	assert.Assert(t, rec != nil && rec.Kind == journal.KindImages && rec.ManifestSHA256 != "" && rec.BackupSHA256 == "", "%+v", rec)
	rec.ManifestSHA256 = ""
	rec.BackupSHA256, err = journal.FileSHA256(backup)
	assert.NilError(t, err)
	assert.NilError(t, store.Remove(ctx))
	assert.NilError(t, store.Save(ctx, rec))
}

// killRestoreWhileWriting runs `backup restore --force out` through a
// stalling proxy, and SIGKILLs the plugin once 16 MiB more than its
// journal have gone to the engine: what the plugin sends once the journal
// is written is the stops, the writing helper, then the content.
func killRestoreWhileWriting(t *testing.T, rig *faultRig, out string) *pluginRun {
	t.Helper()
	p := newStallingProxy(t)
	b := rig.start(t, filepath.Dir(out), out, runOptions{viaDocker: true, env: []string{"DOCKER_HOST=" + p.Host()}}, "backup", "restore", "--force", out)
	waitJournaled(t, b)
	p.stallAfter(16 << 20)
	select {
	case <-p.stalled:
	case <-b.done:
		t.Fatalf("the restore ended before 16 MiB more went to the engine: %s", b.stderr)
	case <-time.After(2 * time.Minute):
		t.Fatalf("the upload never passed 16 MiB more: %s", b.stderr)
	}
	b.killPlugin(t)
	p.release()
	return b
}

// waitJournaled waits until the restore b has written its journal, the
// step before it stops what uses the target.
func waitJournaled(t *testing.T, b *pluginRun) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(b.stderr.String(), "recorded the restore in ") {
		select {
		case <-b.done:
			t.Fatalf("the restore ended (%v) before it wrote its journal: %s", b.err, b.stderr)
		default:
		}
		assert.Assert(t, time.Now().Before(deadline), "no journal written; stderr: %s", b.stderr)
		time.Sleep(time.Millisecond)
	}
}

// stallingProxy relays the engine's socket. Once told to, it stops
// relaying what the plugin sends after so many more bytes: an upload
// stalls part way, what went before written. release ends the stall, and
// closes the engine's side of every connection whose plugin side closed.
type stallingProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	left    int64 // bytes to relay before stalling; -1 while not armed
	stalled chan struct{}
	freed   chan struct{}
	once    sync.Once
}

func newStallingProxy(t *testing.T) *stallingProxy {
	t.Helper()
	p := &stallingProxy{left: -1, stalled: make(chan struct{}), freed: make(chan struct{})}
	p.ln = serveEngineProxy(t, "dtr-stall-", func(client, engine net.Conn) (down, up func()) {
		down = func() { io.Copy(client, engine); client.Close() }
		up = func() { p.up(engine, client); engine.Close() }
		return down, up
	}, p.release)
	return p
}

// up relays the plugin's bytes to the engine, and stalls once armed and
// spent, until released.
func (p *stallingProxy) up(engine, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		chunk := buf[:n]
		p.mu.Lock()
		stall := false
		if p.left >= 0 {
			if int64(len(chunk)) >= p.left {
				chunk, stall = chunk[:p.left], true
			}
			p.left -= int64(len(chunk))
		}
		p.mu.Unlock()
		if len(chunk) > 0 {
			if _, werr := engine.Write(chunk); werr != nil {
				return
			}
		}
		if stall {
			p.once.Do(func() { close(p.stalled) })
			<-p.freed
			return
		}
		if err != nil {
			return
		}
	}
}

func (p *stallingProxy) stallAfter(n int64) {
	p.mu.Lock()
	p.left = n
	p.mu.Unlock()
}

func (p *stallingProxy) release() {
	select {
	case <-p.freed:
	default:
		close(p.freed)
	}
}

func (p *stallingProxy) Host() string { return "unix://" + p.ln.Addr().String() }
