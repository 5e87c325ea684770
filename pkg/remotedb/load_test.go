package remotedb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/dtrgen"
	"github.com/docker-dtr/docker-dtr/internal/rethinkserver"
	"github.com/docker-dtr/docker-dtr/internal/tartest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// loadRig is a real RethinkDB with TLS holding generated DTR data, a
// verified backup of it taken directly, and a direct session to look.
type loadRig struct {
	srv    *rethinkserver.Server
	direct *rethink.Session
	file   string
	backup []byte
	rep    *archive.Report
}

func newLoadRig(t *testing.T, rows int) *loadRig {
	srv := rethinkserver.Start(t, rethinkserver.Options{TLS: true})
	_, err := dtrgen.Generate(context.Background(), srv.Connect(t), dtrgen.Options{Rows: rows, Seed: 11})
	assert.NilError(t, err)
	direct, err := rethink.Connect(context.Background(), rethink.Options{Addr: srv.Addr, CAFile: srv.Certs.CA, CertFile: srv.Certs.ClientCert, KeyFile: srv.Certs.ClientKey,
		ServerName: rethinkserver.ServerName, Connections: 2})
	assert.NilError(t, err)
	t.Cleanup(func() { direct.Close() })
	file := filepath.Join(t.TempDir(), "backup.tar")
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
	assert.NilError(t, err)
	defer f.Close()
	info := archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)}
	_, err = metadata.Backup(context.Background(), direct, f, metadata.BackupOptions{Info: info, Parallel: 2})
	assert.NilError(t, err)
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%+v", rep)
	b, err := os.ReadFile(file)
	assert.NilError(t, err)
	return &loadRig{srv: srv, direct: direct, file: file, backup: b, rep: rep}
}

// open is the backup's archive.Source; cut > 0 fails each pass after that
// many bytes, as backupfile does when the file changed after verify.
func (r *loadRig) open(cut int) archive.Source {
	return func() (io.ReadCloser, error) {
		var rd io.Reader = bytes.NewReader(r.backup)
		if cut > 0 {
			rd = io.MultiReader(io.LimitReader(rd, int64(cut)), errReader{errors.New("backup.tar changed while it was read: verify it again")})
		}
		return io.NopCloser(rd), nil
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// dumpAgain is the database's archive now, as direct mode writes it.
func (r *loadRig) dumpAgain(t *testing.T) []byte {
	var buf bytes.Buffer
	_, err := metadata.Backup(context.Background(), r.direct, &buf, metadata.BackupOptions{Info: archive.Info{Tool: "test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab", Started: time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)}, Parallel: 2})
	assert.NilError(t, err)
	return tartest.Normalize(t, buf.Bytes(), false, "finished", "manifestSHA256")
}

// A restore's plan, load and undo run in the agent: the database ends as
// the backup says, every table's count and key checked, and the progress
// counts every row.
func TestSessionRestore(t *testing.T) {
	rig := newLoadRig(t, 3000)
	want := tartest.Normalize(t, rig.backup, false, "finished", "manifestSHA256")
	// Change the data: the load must put the backup's back.
	_, err := rig.direct.Insert(context.Background(), rethink.TableRef{DB: "dtr2", Table: "tags"}, [][]byte{[]byte(`{"pk":"added-after-the-backup"}`)})
	assert.NilError(t, err)
	assert.Assert(t, !bytes.Equal(rig.dumpAgain(t), want))

	s, _, served := session(t, Dial(rig.srv.Addr, caDir(t, rig.srv.Certs)))
	ctx := context.Background()
	plan, err := s.Plan(ctx, rig.rep)
	assert.NilError(t, err)
	direct, err := metadata.MakePlan(ctx, rig.direct, rig.rep)
	assert.NilError(t, err)
	got, _ := json.Marshal(plan)
	wantPlan, _ := json.Marshal(direct)
	assert.Equal(t, string(got), string(wantPlan))
	assert.Equal(t, len(plan.Created()), 0)

	prog := &progressLog{}
	tables, err := s.Load(ctx, rig.open(0), rig.rep, plan, 3, Hooks{Progress: prog})
	assert.NilError(t, err)
	assert.Equal(t, len(tables), len(rig.rep.Tables))
	assert.Equal(t, prog.rows, rig.rep.Rows, "the progress counted every row")
	assert.Assert(t, bytes.Equal(rig.dumpAgain(t), want), "the database differs from the backup after the load")

	// Undo drops what a plan created: here, as if every table were new.
	undo := *plan
	undo.Tables = append([]metadata.TablePlan(nil), plan.Tables...)
	for i := range undo.Tables {
		undo.Tables[i].Exists = false
	}
	assert.NilError(t, s.Undo(ctx, &undo))
	left, err := rig.direct.TableList(ctx, "dtr2")
	assert.NilError(t, err)
	assert.Check(t, is.Len(left, 0))
	assert.NilError(t, s.Close())
	assert.NilError(t, <-served)
}

// A pass that fails on the plugin's side (the backup changed after it was
// verified) fails the load, which says the database is partly restored;
// the session goes on, and the next load is whole.
func TestLoadPassFails(t *testing.T) {
	rig := newLoadRig(t, 3000)
	want := tartest.Normalize(t, rig.backup, false, "finished", "manifestSHA256")
	s, _, served := session(t, Dial(rig.srv.Addr, caDir(t, rig.srv.Certs)))
	ctx := context.Background()
	plan, err := s.Plan(ctx, rig.rep)
	assert.NilError(t, err)
	_, err = s.Load(ctx, rig.open(len(rig.backup)/2), rig.rep, plan, 2, Hooks{})
	var partial *metadata.PartialError
	assert.Assert(t, errors.As(err, &partial), "%T %v", err, err)
	assert.ErrorContains(t, err, "the database helper docker-dtr-db-test on node node1: ")
	assert.ErrorContains(t, err, "backup.tar changed while it was read")
	assert.NilError(t, s.Broken())

	// The backup's end for the agent, cut off in the middle of its data.
	_, err = s.Load(ctx, rig.open(len(rig.backup)-2000), rig.rep, plan, 2, Hooks{})
	assert.ErrorContains(t, err, "backup.tar changed while it was read")

	_, err = s.Load(ctx, rig.open(0), rig.rep, plan, 2, Hooks{})
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(rig.dumpAgain(t), want))
	s.Close()
	assert.NilError(t, <-served, "the last request succeeded")
}

// The agent gone mid-load (its helper killed): the load fails as lost, the
// session takes no more requests. Interrupted mid-load: the link is cut,
// the load returns at once, and the agent stops (its lease ended).
func TestLoadLostAndInterrupted(t *testing.T) {
	rig := newLoadRig(t, 20000)
	ctx := context.Background()

	// A killed agent's stream ends, and nobody reads its input any more:
	// a pass being sent waits until the link is cut.
	t.Run("agent gone", func(t *testing.T) {
		pl, _ := agentLink(t, Dial(rig.srv.Addr, caDir(t, rig.srv.Certs)), time.Minute)
		l := &stallLink{pipeLink: pl, cut: make(chan struct{})}
		s := newSession("docker-dtr-db-test", "node1", l, 2)
		defer s.Close()
		plan, err := s.Plan(ctx, rig.rep)
		assert.NilError(t, err)
		var killed atomic.Bool
		prog := &hookProgress{add: func() {
			if killed.CompareAndSwap(false, true) {
				l.stall.Store(true)
				l.out.CloseWithError(io.ErrUnexpectedEOF) // what a killed agent's stream gives
			}
		}}
		_, err = s.Load(ctx, rig.open(0), rig.rep, plan, 2, Hooks{Progress: prog})
		assert.Assert(t, killed.Load(), "the load ended before any progress")
		assert.ErrorContains(t, err, "lost the agent: ")
		assert.ErrorContains(t, s.Broken(), "lost the agent: ")
		_, err = s.Plan(ctx, rig.rep)
		assert.ErrorContains(t, err, "lost the agent: ")
	})

	t.Run("interrupted", func(t *testing.T) {
		s, _, served := session(t, Dial(rig.srv.Addr, caDir(t, rig.srv.Certs)))
		plan, err := s.Plan(ctx, rig.rep)
		assert.NilError(t, err)
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		prog := &hookProgress{add: cancel}
		began := time.Now()
		_, err = s.Load(lctx, rig.open(0), rig.rep, plan, 2, Hooks{Progress: prog})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Assert(t, time.Since(began) < 30*time.Second)
		assert.ErrorContains(t, s.Broken(), "interrupted")
		select {
		case err := <-served:
			assert.ErrorContains(t, err, "the plugin's connection ended")
		case <-time.After(20 * time.Second):
			t.Fatal("the agent outlived its interrupted plugin")
		}
	})
}

// hookProgress calls add on the first count.
type hookProgress struct{ add func() }

func (h *hookProgress) Step(string, ...any) {}
func (h *hookProgress) Add(int64, int64)    { h.add() }

// stallLink is a pipeLink whose input, once stalled, takes no more bytes
// until the link is cut, as a killed agent's attach connection does.
type stallLink struct {
	pipeLink
	stall atomic.Bool
	cut   chan struct{}
	once  sync.Once
}

func (l *stallLink) Stdin() io.Writer { return stallWriter{l} }
func (l *stallLink) Interrupt() {
	l.once.Do(func() { close(l.cut) })
	l.pipeLink.Interrupt()
}

type stallWriter struct{ l *stallLink }

func (w stallWriter) Write(p []byte) (int, error) {
	if w.l.stall.Load() {
		<-w.l.cut
		return 0, io.ErrClosedPipe
	}
	return w.l.in.Write(p)
}

// RethinkDB killed mid-load: the load fails with the driver's error, the
// session stays usable (the next request fails as quickly).
func TestLoadRethinkDBKilled(t *testing.T) {
	rig := newLoadRig(t, 20000)
	ctx := context.Background()
	s, _, _ := session(t, Dial(rig.srv.Addr, caDir(t, rig.srv.Certs)))
	plan, err := s.Plan(ctx, rig.rep)
	assert.NilError(t, err)
	var once sync.Once
	prog := &hookProgress{add: func() { once.Do(rig.srv.Kill) }}
	done := make(chan error, 1)
	go func() {
		_, err := s.Load(ctx, rig.open(0), rig.rep, plan, 2, Hooks{Progress: prog})
		done <- err
	}()
	select {
	case err := <-done:
		var partial *metadata.PartialError
		assert.Assert(t, errors.As(err, &partial), "%T %v", err, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the load outlived its RethinkDB by a minute")
	}
	assert.NilError(t, s.Broken())
}
