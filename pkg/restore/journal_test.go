package restore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
)

// memStore is a journal store in memory, that fails where a test says.
type memStore struct {
	rec              *journal.Record
	saveErr, loadErr error
	log              func(string)
	// dead is a store whose run was killed: what that run does after
	// the kill never happens.
	dead bool
}

func (s *memStore) Load(context.Context) (*journal.Record, error) { return s.rec, s.loadErr }
func (s *memStore) Save(_ context.Context, r *journal.Record) error {
	if s.saveErr != nil {
		return s.saveErr
	}
	if s.rec != nil {
		return errors.New("another restore's journal is there")
	}
	s.rec = r
	s.log("journal saved")
	return nil
}
func (s *memStore) Remove(context.Context) error {
	if s.dead {
		return nil
	}
	s.rec = nil
	s.log("journal removed")
	return nil
}
func (s *memStore) Where() string { return "container docker-dtr-journal-0123456789ab on node n1" }

// journaled is a fake with a journal store, and the Options that use it.
func journaled(t *testing.T, f *fake) (*memStore, Options) {
	t.Helper()
	if f.safety != "" {
		f.safety = filepath.Join(t.TempDir(), "safety.tar")
		if err := os.WriteFile(f.safety, []byte("safety"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &memStore{log: f.log}
	f.store = s
	return s, Options{
		Force: true, Journal: s, Backup: "/b/b.tar", BackupSHA256: "abc",
		ResumeCmd: "docker dtr backup restore --resume --replica-id 0123456789ab",
		UndoCmd:   "docker dtr backup restore --undo --replica-id 0123456789ab",
		Restart:   starter(f),
	}
}

// starter is Options.Restart, noting each container in f's calls.
func starter(f *fake) func(context.Context, []journal.Container) error {
	return func(_ context.Context, cs []journal.Container) error {
		for _, c := range cs {
			f.log("start " + c.Name)
		}
		return nil
	}
}

// The journal is written after the safety backup and before anything is
// stopped, holds what the next run needs, and goes once the restore has
// restored.
func TestRunJournal(t *testing.T) {
	f := &fake{safety: "set"}
	s, o := journaled(t, f)
	var seen *journal.Record
	f.cancelOnApply = func() { seen = s.rec }
	code, printed, err := run(t, context.Background(), f, o)
	if err != nil || code != 0 {
		t.Fatal(err)
	}
	// Each crash point after the save finds the journal: stop, apply.
	if got, want := calls(f), "refuse force=true terminal=false, save, journal saved, stop[j], apply[j], restart[j], start dtr-api-0123456789ab[j], journal removed"; got != want {
		t.Fatalf("calls %q\nwant  %q", got, want)
	}
	if s.rec != nil {
		t.Fatal("the journal stayed")
	}
	if seen == nil || seen.Backup != "/b/b.tar" || seen.BackupSHA256 != "abc" || seen.Safety != f.safety || seen.Replica != "0123456789ab" || seen.Started.IsZero() {
		t.Fatalf("journal %+v", seen)
	}
	// sha256("safety")
	if seen.SafetySHA256 != sha("safety") {
		t.Fatalf("safety checksum %s", seen.SafetySHA256)
	}
	if !strings.Contains(strings.Join(printed, "\n"), "recorded the restore in container docker-dtr-journal-0123456789ab") {
		t.Fatalf("%q", printed)
	}
}

func sha(s string) string {
	sum, _ := journal.SHA256(strings.NewReader(s))
	return sum
}

// A journal already there (a killed restore's) refuses the restore before
// anything: nothing asked, saved or stopped.
func TestRunRefusesUnderJournal(t *testing.T) {
	f := &fake{safety: "set"}
	s, o := journaled(t, f)
	s.rec = &journal.Record{Kind: journal.KindMetadata, Backup: "/b/old.tar"}
	_, _, err := run(t, context.Background(), f, o)
	var pending *PendingError
	if !errors.As(err, &pending) || pending.Record.Backup != "/b/old.tar" || len(f.calls) != 0 {
		t.Fatalf("%v %s", err, calls(f))
	}
	s.rec, s.loadErr = nil, errors.New("engine gone")
	if _, _, err := run(t, context.Background(), f, o); err == nil || len(f.calls) != 0 {
		t.Fatalf("%v %s", err, calls(f))
	}
}

// A journal that cannot be written: nothing is stopped, exit 1.
func TestRunJournalFails(t *testing.T) {
	f := &fake{safety: "set"}
	s, o := journaled(t, f)
	s.saveErr = errors.New("node gone")
	code, _, err := run(t, context.Background(), f, o)
	if code != 1 || err.Error() != "restore of b.tar failed before changing it: cannot write its journal: node gone" || calls(f) != "refuse force=true terminal=false, save" {
		t.Fatalf("%d %v %s", code, err, calls(f))
	}
}

// Put back after a failed (or interrupted) load: the journal goes. Left by
// hand: it stays, and the command is --undo (or --resume, where nothing
// can be put back).
func TestRunJournalAfterFailure(t *testing.T) {
	f := &fake{safety: "set", applyErr: errors.New("disk full")}
	s, o := journaled(t, f)
	if code, _, _ := run(t, context.Background(), f, o); code != 1 || s.rec != nil || !strings.HasSuffix(calls(f), "apply[j], rollback[j], restart[j], start dtr-api-0123456789ab[j], journal removed") {
		t.Fatalf("%d %s", code, calls(f))
	}

	ctx, cancel := context.WithCancel(context.Background())
	f = &fake{safety: "set", applyErr: context.Canceled, cancelOnApply: cancel}
	s, o = journaled(t, f)
	if code, _, _ := run(t, ctx, f, o); code != exitcode.Interrupted || s.rec != nil {
		t.Fatalf("%d %s", code, calls(f))
	}

	f = &fake{safety: "set", applyErr: errors.New("disk full"), rollbackErrs: []error{errors.New("engine gone")}}
	s, o = journaled(t, f)
	code, _, err := run(t, context.Background(), f, o)
	want := "restore of b.tar failed (disk full), and putting the safety backup back failed too (engine gone): finish by hand, once the cause is fixed, with: docker dtr backup restore --undo --replica-id 0123456789ab"
	if code != exitcode.ByHand || err.Error() != want || s.rec == nil {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
	if !strings.HasSuffix(calls(f), "restart[j], start dtr-api-0123456789ab[j]") {
		t.Fatal(calls(f))
	}

	f = &fake{applyErr: errors.New("disk full"), noRollback: true}
	s, o = journaled(t, f)
	code, _, err = run(t, context.Background(), f, o)
	want = "restore of b.tar failed, it was not put back (--no-safety-backup): once the cause is fixed, finish it with: docker dtr backup restore --resume --replica-id 0123456789ab: disk full"
	if code != exitcode.ByHand || err.Error() != want || s.rec == nil {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
}

// killed is the journal a restore killed while it loaded leaves: a fresh
// fake, the store holding that journal.
func killed(t *testing.T, f *fake) (*memStore, Options, *journal.Record) {
	t.Helper()
	first := &fake{safety: f.safety}
	s, o := journaled(t, first)
	first.cancelOnApply = func() { s.dead = true; panic("killed") }
	func() {
		defer func() { recover() }()
		Run(context.Background(), first, o)
	}()
	if s.rec == nil {
		t.Fatal("the killed restore left no journal")
	}
	f.safety = s.rec.Safety
	s.log, f.store, s.dead = f.log, s, false
	o.Restart = starter(f)
	return s, o, s.rec
}

// --resume loads the backup again, starts what the killed run stopped, and
// removes the journal; a load that fails again is put back from the
// journal's safety backup, and the journal goes too.
func TestResume(t *testing.T) {
	f := &fake{safety: "set"}
	s, o, rec := killed(t, f)
	code, _, err := func() (int, []string, error) {
		err := Resume(context.Background(), f, rec, o)
		return exitcode.Of(err, false), nil, err
	}()
	if code != 0 || s.rec != nil {
		t.Fatalf("%d %v %s", code, err, calls(f))
	}
	if got, want := calls(f), "stop[j], apply[j], restart[j], start dtr-api-0123456789ab[j], journal removed"; got != want {
		t.Fatalf("calls %q\nwant  %q", got, want)
	}

	f = &fake{safety: "set", applyErr: errors.New("disk full")}
	s, o, rec = killed(t, f)
	err = Resume(context.Background(), f, rec, o)
	if exitcode.Of(err, false) != 1 || s.rec != nil || !strings.Contains(err.Error(), "put back from the safety backup "+rec.Safety) {
		t.Fatalf("%v %s", err, calls(f))
	}

	// Killed again while resuming: the journal is still there for the next.
	f = &fake{safety: "set", applyErr: errors.New("disk full"), rollbackErrs: []error{errors.New("engine gone")}}
	s, o, rec = killed(t, f)
	err = Resume(context.Background(), f, rec, o)
	if exitcode.Of(err, false) != exitcode.ByHand || s.rec == nil || !strings.HasSuffix(err.Error(), o.UndoCmd) {
		t.Fatalf("%v %s", err, calls(f))
	}
}

// --undo puts the safety backup back, starts what the killed run stopped,
// and removes the journal; when that fails, the journal stays and the
// error says to run --undo again.
func TestUndo(t *testing.T) {
	f := &fake{safety: "set"}
	s, o, rec := killed(t, f)
	if err := Undo(context.Background(), f, rec, o); err != nil || s.rec != nil {
		t.Fatalf("%v %s", err, calls(f))
	}
	if got, want := calls(f), "stop[j], rollback[j], restart[j], start dtr-api-0123456789ab[j], journal removed"; got != want {
		t.Fatalf("calls %q\nwant  %q", got, want)
	}

	f = &fake{safety: "set", rollbackErrs: []error{errors.New("engine gone")}}
	s, o, rec = killed(t, f)
	err := Undo(context.Background(), f, rec, o)
	want := "undoing the restore of /b/b.tar failed (engine gone): it is partly restored; run it again once the cause is fixed: docker dtr backup restore --undo --replica-id 0123456789ab"
	if exitcode.Of(err, false) != exitcode.ByHand || err.Error() != want || s.rec == nil {
		t.Fatalf("%v\nwant %s", err, want)
	}

	// No safety backup of tables that held data: nothing to put back from.
	f = &fake{}
	s, o, rec = killed(t, f)
	err = Undo(context.Background(), f, rec, o)
	if err == nil || !strings.Contains(err.Error(), "took no safety backup") || len(f.calls) != 0 || s.rec == nil {
		t.Fatalf("%v %s", err, calls(f))
	}
}

// Asked on a terminal, unless --force; "no" changes nothing.
func TestResumeAsks(t *testing.T) {
	f := &fake{safety: "set"}
	s, o, rec := killed(t, f)
	o.Force = false
	var asked string
	o.Confirm = func(_ context.Context, q string) error { asked = q; return errors.New("cancelled") }
	if err := Resume(context.Background(), f, rec, o); err == nil || len(f.calls) != 0 || s.rec == nil {
		t.Fatalf("%v %s", err, calls(f))
	}
	if !strings.HasPrefix(asked, "Finish the restore of b.tar into replica 0123456789ab that started ") {
		t.Fatal(asked)
	}
}
