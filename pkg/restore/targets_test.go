package restore

import (
	"context"
	"errors"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// The two real targets' words, through the engine's failure branches, with
// their side effects faked: the messages the restore commands printed
// before there was one engine.

// images is the Images target with its writes faked.
type images struct {
	*Images
	applyErr, rollbackErr error
}

func (t images) SaveSafety(context.Context) error           { return nil }
func (t images) Stop(context.Context) (func() error, error) { return nil, nil }
func (t images) Apply(context.Context) error                { return t.applyErr }
func (t images) Rollback(context.Context) error {
	t.wiped = true // as the real one does before it writes the safety backup back
	return t.rollbackErr
}

func newImages(empty bool, safety string, noSafety bool) *Images {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node1", Version: "2.9.4"}
	return NewImages(&Images{
		Name: "b.tar", Report: &imagearchive.Report{}, Replica: rep, NoSafety: noSafety,
		Volume:   &imagevolume.Volume{Replica: rep, Name: "dtr-registry-0123456789ab"},
		Progress: progress.NewMode(discard{}, progress.Quiet),
	}, empty, safety)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func byHand(p string) string { return "docker dtr backup restore --yes --no-safety-backup " + p }

func TestImagesMessages(t *testing.T) {
	full := errors.New("disk full")
	gone := errors.New("engine gone")
	for _, tc := range []struct {
		name     string
		t        images
		code     int
		want     string
		refusing bool
	}{
		{"put back", images{newImages(false, "/b/s.tar", false), full, nil}, 1,
			"restore of b.tar failed, and volume dtr-registry-0123456789ab was put back from the safety backup /b/s.tar: disk full", false},
		{"emptied again", images{newImages(true, "", false), full, nil}, 1,
			"restore of b.tar failed, and volume dtr-registry-0123456789ab was emptied again, as it was before: disk full", false},
		{"not put back", images{newImages(false, "", true), full, nil}, exitcode.ByHand,
			"restore of b.tar failed, volume dtr-registry-0123456789ab may be partly written and was not put back (--no-safety-backup): run the restore again with --force once the cause is fixed: disk full", false},
		{"by hand", images{newImages(false, "/b/s.tar", false), full, gone}, exitcode.ByHand,
			"restore of b.tar failed (disk full), and putting the volume back failed too (engine gone): finish by hand, once the cause is fixed, with: docker dtr backup restore --yes --no-safety-backup /b/s.tar", false},
		{"partly written", images{newImages(true, "", false), full, gone}, exitcode.ByHand,
			"restore of b.tar failed (disk full), and putting the volume back failed too (engine gone): volume dtr-registry-0123456789ab was empty before and may be partly written now; run the restore again with --force once the cause is fixed", false},
		{"not empty", images{newImages(false, "/b/s.tar", false), nil, nil}, 1,
			"volume dtr-registry-0123456789ab of replica 0123456789ab is not empty: refusing to restore b.tar over it; pass --force to write over it (what it holds is saved in a safety backup first; files the backup does not hold stay), or restore into an empty volume", true},
	} {
		err := Run(context.Background(), tc.t, Options{Force: !tc.refusing, ByHand: byHand})
		if got := exitcode.Of(err, false); got != tc.code || err == nil || err.Error() != tc.want {
			t.Errorf("%s: %d %v\nwant %d %s", tc.name, got, err, tc.code, tc.want)
		}
	}

	// Before the volume is emptied, files the restore added stay beside
	// what is put back by hand.
	tgt := newImages(false, "/b/s.tar", false)
	if w := tgt.Words(); w.ByHandNote != "; files the failed restore added stay beside what it puts back" {
		t.Errorf("%q", w.ByHandNote)
	}
	tgt.AgentErr = errors.New("not a linux program")
	want := "refusing to restore b.tar, nothing was changed: putting volume dtr-registry-0123456789ab back if writing fails runs this plugin as an agent on node node1: not a linux program"
	if err := tgt.Refuse(true, false); err == nil || err.Error() != want {
		t.Errorf("%v", err)
	}
	if q := tgt.Question(); q != "Restore b.tar into volume dtr-registry-0123456789ab of replica 0123456789ab on node node1, writing 0 files (0 B) over what it holds now" {
		t.Errorf("%q", q)
	}
}

// meta is the Metadata target with its writes faked.
type meta struct {
	*Metadata
	applyErr, rollbackErr error
}

func (t meta) SaveSafety(context.Context) error           { return nil }
func (t meta) Stop(context.Context) (func() error, error) { return nil, nil }
func (t meta) Apply(context.Context) error                { return t.applyErr }
func (t meta) Rollback(context.Context) error             { return t.rollbackErr }
func (t meta) Reconnect(context.Context) error            { return nil }

func newMeta(replace bool, safety string) *Metadata {
	plan := &metadata.Plan{Tables: []metadata.TablePlan{
		{Table: archive.Table{DB: "dtr2", Name: "tags"}, Exists: replace},
		{Table: archive.Table{DB: "dtr2", Name: "events"}},
	}}
	return &Metadata{Name: "b.tar", Plan: plan, Where: "replica 0123456789ab on node node1", Safety: safety,
		Progress: progress.NewMode(discard{}, progress.Quiet)}
}

func TestMetadataMessages(t *testing.T) {
	full := errors.New("disk full")
	gone := errors.New("EOF")
	for _, tc := range []struct {
		name string
		t    meta
		code int
		want string
	}{
		{"put back", meta{newMeta(true, "/b/s.tar"), full, nil}, 1,
			"restore of b.tar failed, and the tables it replaced were put back from the safety backup /b/s.tar: disk full"},
		{"dropped", meta{newMeta(false, ""), full, nil}, 1,
			"restore of b.tar failed, and the tables it created were dropped again; nothing else had been there: disk full"},
		{"by hand", meta{newMeta(true, "/b/s.tar"), full, gone}, exitcode.ByHand,
			"restore of b.tar failed (disk full), and putting the safety backup back failed too (EOF): finish by hand, once the cause is fixed, with: docker dtr backup restore --yes --no-safety-backup /b/s.tar; then drop the tables it created: dtr2.events"},
		{"partly restored", meta{newMeta(false, ""), full, gone}, exitcode.ByHand,
			"restore of b.tar failed (disk full), and dropping the tables it created failed too (EOF): the target is partly restored; run the restore again with --force once the cause is fixed"},
	} {
		err := Run(context.Background(), tc.t, Options{Force: true, ByHand: byHand})
		if got := exitcode.Of(err, false); got != tc.code || err == nil || err.Error() != tc.want {
			t.Errorf("%s: %d %v\nwant %d %s", tc.name, got, err, tc.code, tc.want)
		}
	}

	tgt := newMeta(true, "/b/s.tar")
	want := "refusing to replace 1 existing tables (dtr2.tags): pass --force to drop and restore them"
	if err := tgt.Refuse(false, false); err == nil || err.Error() != want {
		t.Errorf("%v", err)
	}
	if err := tgt.Refuse(false, true); err != nil {
		t.Errorf("on a terminal someone is asked: %v", err)
	}
	if q := tgt.Question(); q != "Restore b.tar into replica 0123456789ab on node node1, replacing 1 tables that hold data now" {
		t.Errorf("%q", q)
	}
	if q := newMeta(false, "").Question(); q != "Restore b.tar into replica 0123456789ab on node node1, creating 2 tables" {
		t.Errorf("%q", q)
	}
}
