package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
)

// fake is a target that does nothing but record what the engine asked of
// it, and fails where a test says.
type fake struct {
	calls                    []string
	safety                   string
	refuse, saveErr, stopErr error
	applyErr, restartErr     error
	rollbackErrs             []error // one per Rollback, in turn
	noRollback               bool
	cancelOnApply            context.CancelFunc
	rollbackCtxErr           error // the rollback's context's Err, as it found it
	unprotected              string
	// store is the journal's store, whose state each step notes.
	store *memStore
}

func (f *fake) log(s string) {
	if f.store != nil && f.store.rec != nil && s != "journal saved" {
		s += "[j]" // the journal is there while this step runs
	}
	f.calls = append(f.calls, s)
}

func (f *fake) Words() Words {
	return Words{
		Name: "b.tar", Unprotected: f.unprotected, BeforeChange: "changing it",
		PuttingBack: "putting it back", PutBack: "it was put back", Undone: "what it added was removed",
		PutBackFailed: "putting the safety backup back", UndoFailed: "removing what it added",
		PartlyRestored: "it is partly restored", NotPutBack: "it was not put back (--no-safety-backup)",
		ByHandNote: "; then tidy up",
	}
}
func (f *fake) Refuse(force, terminal bool) error {
	f.log(fmt.Sprintf("refuse force=%v terminal=%v", force, terminal))
	return f.refuse
}
func (f *fake) Question() string   { return "Restore b.tar" }
func (f *fake) SafetyPath() string { return f.safety }
func (f *fake) SaveSafety(context.Context) error {
	f.log("save")
	return f.saveErr
}
func (f *fake) Stop(context.Context) (func() error, error) {
	f.log("stop")
	return func() error { f.log("restart"); return f.restartErr }, f.stopErr
}
func (f *fake) Apply(context.Context) error {
	f.log("apply")
	if f.cancelOnApply != nil {
		f.cancelOnApply()
	}
	return f.applyErr
}
func (f *fake) CanRollBack() bool { return !f.noRollback }
func (f *fake) Rollback(ctx context.Context) error {
	f.log("rollback")
	f.rollbackCtxErr = ctx.Err()
	if len(f.rollbackErrs) == 0 {
		return nil
	}
	err := f.rollbackErrs[0]
	f.rollbackErrs = f.rollbackErrs[1:]
	return err
}

func (f *fake) Journal(r *journal.Record) {
	r.Kind, r.Replica = journal.KindMetadata, "0123456789ab"
	r.Containers = []journal.Container{{Name: "dtr-api-0123456789ab", ID: "c1"}}
	r.Tables = []journal.Table{{DB: "dtr2", Name: "events", Existed: true}}
}

// reconnecting is a fake whose way in can be opened again.
type reconnecting struct{ *fake }

func (r reconnecting) Reconnect(context.Context) error {
	r.log("reconnect")
	return nil
}

// run runs the engine on tgt and returns the exit status, the steps and
// warnings printed, and the error.
func run(t *testing.T, ctx context.Context, tgt Target, o Options) (int, []string, error) {
	t.Helper()
	var printed []string
	o.Log = func(format string, args ...any) { printed = append(printed, fmt.Sprintf(format, args...)) }
	o.Warn = func(format string, args ...any) { printed = append(printed, "warning: "+fmt.Sprintf(format, args...)) }
	if o.ByHand == nil {
		o.ByHand = func(path string) string { return "docker dtr backup restore --yes --no-safety-backup " + path }
	}
	err := Run(ctx, tgt, o)
	return exitcode.Of(err, ctx.Err() != nil), printed, err
}

func calls(f *fake) string { return strings.Join(f.calls, ", ") }

func TestRunRestores(t *testing.T) {
	f := &fake{safety: "/b/safety.tar"}
	code, _, err := run(t, context.Background(), f, Options{Force: true})
	if err != nil || code != 0 {
		t.Fatal(err)
	}
	if got, want := calls(f), "refuse force=true terminal=false, save, stop, apply, restart"; got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
}

// Refused, cancelled at the prompt, or a safety backup that failed:
// nothing is stopped or written, exit status 1.
func TestRunChangesNothingBeforeTheSafetyBackup(t *testing.T) {
	refused := errors.New("refusing to replace 3 existing tables")
	f := &fake{refuse: refused}
	if code, _, err := run(t, context.Background(), f, Options{}); !errors.Is(err, refused) || code != 1 || calls(f) != "refuse force=false terminal=false" {
		t.Fatalf("%v %d %s", err, code, calls(f))
	}

	no := errors.New("restore cancelled at the prompt: nothing was changed")
	f = &fake{}
	var asked string
	o := Options{Terminal: true, Confirm: func(_ context.Context, q string) error { asked = q; return no }}
	if code, _, err := run(t, context.Background(), f, o); !errors.Is(err, no) || code != 1 || calls(f) != "refuse force=false terminal=true" {
		t.Fatalf("%v %d %s", err, code, calls(f))
	}
	if asked != "Restore b.tar?" {
		t.Fatalf("asked %q", asked)
	}

	f = &fake{safety: "/b/safety.tar", saveErr: errors.New("saving the safety backup /b/safety.tar failed, nothing was changed: disk full")}
	if code, _, err := run(t, context.Background(), f, Options{Force: true}); err != f.saveErr || code != 1 || calls(f) != "refuse force=true terminal=false, save" {
		t.Fatalf("%v %d %s", err, code, calls(f))
	}
}

func TestRunWarnsWithoutSafetyBackup(t *testing.T) {
	f := &fake{unprotected: "what volume v holds now"}
	_, printed, _ := run(t, context.Background(), f, Options{Force: true})
	if len(printed) != 1 || printed[0] != "warning: no safety backup (--no-safety-backup): if this restore fails, what volume v holds now is lost" {
		t.Fatalf("%q", printed)
	}
}

// Stopping failed: nothing was written, what was stopped is started again.
func TestRunStopFailed(t *testing.T) {
	f := &fake{stopErr: errors.New("cannot stop dtr-registry-x")}
	code, _, err := run(t, context.Background(), f, Options{Force: true})
	if code != 1 || err.Error() != "restore of b.tar failed before changing it: cannot stop dtr-registry-x" {
		t.Fatalf("%d %v", code, err)
	}
	if got := calls(f); got != "refuse force=true terminal=false, stop, restart" {
		t.Fatal(got)
	}
}

// Interrupted while stopping (the stops end, then the context's error):
// nothing was written, what was stopped starts again, exit 130, and the
// message says so rather than "context canceled".
func TestRunInterruptedWhileStopping(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fake{stopErr: context.Canceled}
	code, _, err := run(t, ctx, f, Options{Force: true})
	if want := "restore of b.tar was interrupted before changing it: interrupted"; code != exitcode.Interrupted || err.Error() != want {
		t.Fatalf("%d %q, want %q", code, err, want)
	}
	if got := calls(f); got != "refuse force=true terminal=false, stop, restart" {
		t.Fatal(got)
	}
}

// A failed apply is put back, before what was stopped starts again: exit 1.
func TestRunRollsBack(t *testing.T) {
	cause := errors.New("connection reset")
	f := &fake{safety: "/b/safety.tar", applyErr: cause}
	code, printed, err := run(t, context.Background(), f, Options{Force: true})
	if code != 1 || !errors.Is(err, cause) {
		t.Fatalf("%d %v", code, err)
	}
	if want := "restore of b.tar failed, and it was put back from the safety backup /b/safety.tar: connection reset"; err.Error() != want {
		t.Fatalf("%q, want %q", err, want)
	}
	if got := calls(f); got != "refuse force=true terminal=false, save, stop, apply, rollback, restart" {
		t.Fatal(got)
	}
	if printed[0] != "restore failed: putting it back" {
		t.Fatalf("%q", printed)
	}

	f = &fake{applyErr: cause}
	code, _, err = run(t, context.Background(), f, Options{Force: true})
	if want := "restore of b.tar failed, and what it added was removed: connection reset"; code != 1 || err.Error() != want {
		t.Fatalf("%d %q, want %q", code, err, want)
	}
}

// The rollback failed too: exit 3, with the exact command that finishes by
// hand, or what is left when there was no safety backup.
func TestRunLeavesByHand(t *testing.T) {
	f := &fake{safety: "/b/safety.tar", applyErr: errors.New("disk full"), rollbackErrs: []error{errors.New("engine gone")}}
	code, _, err := run(t, context.Background(), f, Options{Force: true, ByHand: func(p string) string {
		return "docker --context prod dtr backup restore --yes --no-safety-backup --replica-id 0123456789ab " + p
	}})
	want := "restore of b.tar failed (disk full), and putting the safety backup back failed too (engine gone): finish by hand, once the cause is fixed, with: " +
		"docker --context prod dtr backup restore --yes --no-safety-backup --replica-id 0123456789ab /b/safety.tar; then tidy up"
	if code != exitcode.ByHand || err.Error() != want {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
	if got := calls(f); !strings.HasSuffix(got, "apply, rollback, restart") {
		t.Fatal(got)
	}

	f = &fake{applyErr: errors.New("disk full"), rollbackErrs: []error{errors.New("engine gone")}}
	code, _, err = run(t, context.Background(), f, Options{Force: true})
	want = "restore of b.tar failed (disk full), and removing what it added failed too (engine gone): it is partly restored; run the restore again with --force once the cause is fixed"
	if code != exitcode.ByHand || err.Error() != want {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}

	f = &fake{applyErr: errors.New("disk full"), noRollback: true}
	code, _, err = run(t, context.Background(), f, Options{Force: true})
	want = "restore of b.tar failed, it was not put back (--no-safety-backup): run the restore again with --force once the cause is fixed: disk full"
	if code != exitcode.ByHand || err.Error() != want {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
	if got := calls(f); !strings.HasSuffix(got, "apply, restart") {
		t.Fatal(got)
	}
}

// A lost connection may be what failed: the rollback is tried once more on
// a new one.
func TestRunReconnects(t *testing.T) {
	f := &fake{safety: "/b/safety.tar", applyErr: errors.New("EOF"), rollbackErrs: []error{errors.New("EOF")}}
	code, printed, err := run(t, context.Background(), reconnecting{f}, Options{Force: true})
	if code != 1 || !strings.Contains(err.Error(), "it was put back from the safety backup") {
		t.Fatalf("%d %v", code, err)
	}
	if got := calls(f); !strings.HasSuffix(got, "apply, rollback, reconnect, rollback, restart") {
		t.Fatal(got)
	}
	if printed[1] != "putting back failed (EOF): trying again on a new connection" {
		t.Fatalf("%q", printed)
	}
}

// Interrupted while writing: put back in a context of its own, exit 130;
// when it could not be put back, 3 all the same.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fake{safety: "/b/safety.tar", applyErr: context.Canceled, cancelOnApply: cancel}
	code, _, err := run(t, ctx, f, Options{Force: true})
	if want := "restore of b.tar was interrupted, and it was put back from the safety backup /b/safety.tar: interrupted"; code != exitcode.Interrupted || err.Error() != want {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
	if f.rollbackCtxErr != nil {
		t.Fatalf("the rollback ran in an ended context: %v", f.rollbackCtxErr)
	}

	ctx, cancel = context.WithCancel(context.Background())
	f = &fake{safety: "/b/safety.tar", applyErr: context.Canceled, cancelOnApply: cancel, rollbackErrs: []error{errors.New("engine gone")}}
	code, _, err = run(t, ctx, f, Options{Force: true})
	if code != exitcode.ByHand || !strings.HasPrefix(err.Error(), "restore of b.tar was interrupted (interrupted), and putting the safety backup back failed too (engine gone): finish by hand") {
		t.Fatalf("%d %q", code, err)
	}
}

// Interrupted before anything was written (while saving the safety
// backup): nothing is stopped or put back, exit 130. Interrupted where
// the target cannot be put back: 3.
func TestRunInterruptedBeforeApply(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := &fake{safety: "/b/safety.tar", saveErr: context.Canceled}
	code, _, err := run(t, ctx, f, Options{Force: true})
	if code != exitcode.Interrupted || err != f.saveErr || calls(f) != "refuse force=true terminal=false, save" {
		t.Fatalf("%d %v %s", code, err, calls(f))
	}

	ctx, cancel = context.WithCancel(context.Background())
	f = &fake{applyErr: context.Canceled, cancelOnApply: cancel, noRollback: true}
	code, _, err = run(t, ctx, f, Options{Force: true})
	want := "restore of b.tar was interrupted, it was not put back (--no-safety-backup): run the restore again with --force once the cause is fixed: interrupted"
	if code != exitcode.ByHand || err.Error() != want {
		t.Fatalf("%d %q\nwant %q", code, err, want)
	}
}

// A rollback that fails on a new connection too: exit 3.
func TestRunReconnectFails(t *testing.T) {
	f := &fake{safety: "/b/safety.tar", applyErr: errors.New("EOF"), rollbackErrs: []error{errors.New("EOF"), errors.New("EOF again")}}
	code, _, err := run(t, context.Background(), reconnecting{f}, Options{Force: true})
	if code != exitcode.ByHand || !strings.Contains(err.Error(), "putting the safety backup back failed too (EOF again)") {
		t.Fatalf("%d %v", code, err)
	}
}

// What was stopped and does not start again is a warning: the restore's
// own outcome stands.
func TestRunRestartFails(t *testing.T) {
	f := &fake{restartErr: errors.New("cannot start dtr-registry-x")}
	code, printed, err := run(t, context.Background(), f, Options{Force: true})
	if code != 0 || err != nil || len(printed) != 1 || printed[0] != "warning: cannot start dtr-registry-x" {
		t.Fatalf("%d %v %q", code, err, printed)
	}
	f = &fake{safety: "/b/safety.tar", applyErr: errors.New("disk full"), restartErr: errors.New("cannot start dtr-registry-x")}
	code, printed, _ = run(t, context.Background(), f, Options{Force: true})
	if code != 1 || printed[len(printed)-1] != "warning: cannot start dtr-registry-x" || !strings.HasSuffix(calls(f), "rollback, restart") {
		t.Fatalf("%d %q %s", code, printed, calls(f))
	}
}
