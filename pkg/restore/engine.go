// Package restore is the restore engine: it runs the steps every restore
// takes, once, for any Target (a metadata backup into RethinkDB's tables,
// an image backup into a replica's image volume):
//
//  1. plan (the caller builds the target, which holds its plan);
//  2. refuse what must not go ahead, and confirm;
//  3. save what the restore replaces in a safety backup;
//  4. stop what uses the target;
//  5. apply the backup;
//  6. check it (part of Apply);
//  7. on failure, put the target back, and say what is left to do by hand;
//  8. start what was stopped again, whatever happened.
//
// It decides the outcome: an error that left the target as it was (exit
// status 1, 130 when interrupted), or one that left it partly restored,
// with the command that finishes the job (3, see pkg/exitcode).
//
// Between 3 and 4 it writes a journal on the target's node (pkg/journal):
// what it stops, replaces and restores, and where the safety backup is. The
// journal goes once the restore has finished, restored or put back; a
// restore killed, or left by hand, leaves it, and Resume or Undo finish it.
package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
)

// Target is what a restore writes into. The engine calls its methods in
// the order above; a target does the work and names itself in the
// engine's messages (Words).
type Target interface {
	// Words names the backup and the target in the engine's messages. It
	// is asked again after a rollback, which may change the note.
	Words() Words
	// Refuse says why the restore must not go ahead, before anyone is
	// asked; nil when it may. force is --force; terminal says someone can
	// be asked.
	Refuse(force, terminal bool) error
	// Question is what a person confirms, without its question mark.
	Question() string
	// SafetyPath is where SaveSafety saves what the restore replaces;
	// empty when nothing is replaced or the safety backup was given up.
	SafetyPath() string
	// SaveSafety saves what the restore replaces and verifies the copy; it
	// changes nothing in the target.
	SaveSafety(ctx context.Context) error
	// Stop stops what uses the target while it is written; restart starts
	// it again (it may be nil when nothing was stopped).
	Stop(ctx context.Context) (restart func() error, err error)
	// Apply writes the backup into the target and checks what it wrote.
	Apply(ctx context.Context) error
	// CanRollBack says whether a failed Apply can be undone at all.
	CanRollBack() bool
	// Rollback puts the target back as it was: from the safety backup
	// when there is one, else by undoing what the restore added.
	Rollback(ctx context.Context) error
	// Journal fills in what the journal records of the target: its kind,
	// replica, the containers Stop stops, and what Apply replaces.
	Journal(r *journal.Record)
}

// Reconnector is a target whose way in may be what failed (a lost
// connection): a failed rollback is tried once more on a new one.
type Reconnector interface {
	Reconnect(ctx context.Context) error
}

// Words are the phrases a target gives the engine's messages, such as
// "restore of NAME failed, and PUTBACK from the safety backup PATH".
type Words struct {
	// Name is the backup being restored.
	Name string
	// Unprotected is what is lost if a restore without a safety backup
	// fails ("what volume X holds now"); empty when nothing is.
	Unprotected string
	// BeforeChange ends "failed before …" when stopping failed.
	BeforeChange string
	// PuttingBack is the step that starts a rollback.
	PuttingBack string
	// PutBack is a rollback from the safety backup that worked.
	PutBack string
	// Undone is a rollback without a safety backup that worked.
	Undone string
	// PutBackFailed is the rollback from the safety backup that failed.
	PutBackFailed string
	// UndoFailed is the rollback without a safety backup that failed.
	UndoFailed string
	// PartlyRestored is the state a failed undo leaves.
	PartlyRestored string
	// NotPutBack is the state when the target cannot be rolled back.
	NotPutBack string
	// ByHandNote follows the command that finishes by hand.
	ByHandNote string
}

// Options are how the engine reaches the person running it.
type Options struct {
	// Force skips the confirmation, and lets targets replace what holds data.
	Force bool
	// Terminal says that someone can be asked.
	Terminal bool
	// Confirm asks; an error (the answer "no") cancels the restore.
	Confirm func(ctx context.Context, question string) error
	// Log prints steps and Warn warnings (the progress printer's).
	Log, Warn func(format string, args ...any)
	// ByHand is the command that restores the safety backup at path, for
	// a person to run when the engine could not.
	ByHand func(path string) string
	// Cleanup is the context a rollback runs in, once the command's own
	// may have ended (default: 15 minutes from now).
	Cleanup func() (context.Context, context.CancelFunc)

	// Journal keeps the restore's journal; nil for none.
	Journal journal.Store
	// Backup and BackupSHA256 are the backup being restored, for the
	// journal: its path (absolute, or "-") and the checksum of its content;
	// an image backup's is ManifestSHA256 instead (journal.Record).
	Backup, BackupSHA256, ManifestSHA256 string
	// ResumeCmd and UndoCmd are the commands that finish a restore from its
	// journal, for the messages of one left by hand.
	ResumeCmd, UndoCmd string
	// Restart starts again the containers a journal says were stopped.
	Restart func(ctx context.Context, cs []journal.Container) error

	// journaled says the journal is written: a restore left by hand is
	// finished with ResumeCmd or UndoCmd.
	journaled bool
}

// PendingError is a journal found where a restore would write its own: a
// restore of the same target is unfinished (or under way).
type PendingError struct {
	Record *journal.Record
	Where  string
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("an unfinished %s restore of %s (started %s) is recorded in %s: finish it with --resume, or put back what it replaced with --undo",
		e.Record.Kind, e.Record.Backup, e.Record.Started.UTC().Format(time.RFC3339), e.Where)
}

// Run restores into t. The error says what state t is in; exitcode.Of
// gives its exit status.
func Run(ctx context.Context, t Target, o Options) (err error) {
	o.defaults()
	w := t.Words()
	if o.Journal != nil {
		rec, err := o.Journal.Load(ctx)
		if err != nil {
			return fmt.Errorf("restore of %s refused, nothing was changed: %w", w.Name, err)
		}
		if rec != nil {
			return &PendingError{Record: rec, Where: o.Journal.Where()}
		}
	}
	if err := t.Refuse(o.Force, o.Terminal); err != nil {
		return err
	}
	if !o.Force {
		if err := o.Confirm(ctx, t.Question()+"?"); err != nil {
			return err
		}
	}
	switch {
	case t.SafetyPath() != "":
		if err := t.SaveSafety(ctx); err != nil {
			return err
		}
	case w.Unprotected != "":
		o.Warn("no safety backup (--no-safety-backup): if this restore fails, %s is lost", w.Unprotected)
	}
	var rec *journal.Record
	if o.Journal != nil {
		if rec, err = o.record(t); err == nil {
			err = o.Journal.Save(ctx, rec)
		}
		if err != nil {
			return fmt.Errorf("restore of %s failed before %s: cannot write its journal: %w", w.Name, w.BeforeChange, err)
		}
		o.journaled = true
		o.Log("recorded the restore in %s", o.Journal.Where())
	}
	return finish(ctx, t, rec, &o, func() error {
		if err := t.Apply(ctx); err != nil {
			return failed(ctx, t, o, err)
		}
		return nil
	})
}

// finish stops what uses t, runs step, and starts again what it stopped
// and what rec says was stopped before (once step has put things back,
// so that they come back on the target as it is meant to stay). The
// journal goes once the restore has finished either way: not when it is
// left by hand.
func finish(ctx context.Context, t Target, rec *journal.Record, o *Options, step func() error) (err error) {
	restart, err := t.Stop(ctx)
	defer func() {
		if restart != nil {
			if rerr := restart(); rerr != nil {
				o.Warn("%v", rerr)
			}
		}
		if rec == nil || o.Journal == nil {
			return
		}
		if len(rec.Containers) > 0 && o.Restart != nil {
			if rerr := o.Restart(context.WithoutCancel(ctx), rec.Containers); rerr != nil {
				o.Warn("%v", rerr)
			}
		}
		if exitcode.Of(err, false) == exitcode.ByHand {
			return
		}
		rctx, cancel := o.Cleanup()
		defer cancel()
		if rerr := o.Journal.Remove(rctx); rerr != nil {
			o.Warn("%v", rerr)
		}
	}()
	if err != nil {
		w := t.Words()
		if ctx.Err() != nil {
			// Interrupted while stopping: what broke off says only
			// "context canceled". Exit 130 comes from the context.
			return fmt.Errorf("restore of %s was interrupted before %s: interrupted", w.Name, w.BeforeChange)
		}
		return fmt.Errorf("restore of %s failed before %s: %w", w.Name, w.BeforeChange, err)
	}
	return step()
}

// record is the journal of the restore of t, before anything is stopped.
func (o *Options) record(t Target) (*journal.Record, error) {
	r := &journal.Record{
		Started: time.Now().UTC().Truncate(time.Second), Backup: o.Backup,
		BackupSHA256: o.BackupSHA256, ManifestSHA256: o.ManifestSHA256,
		Safety: t.SafetyPath(), Owner: helpercontainer.Self(),
	}
	t.Journal(r)
	if r.Safety != "" {
		sum, err := journal.FileSHA256(r.Safety)
		if err != nil {
			return nil, fmt.Errorf("the safety backup: %w", err)
		}
		r.SafetySHA256 = sum
	}
	r.Protection = SafetyProtection(t)
	return r, nil
}

func (o *Options) defaults() {
	if o.Confirm == nil {
		o.Confirm = func(context.Context, string) error { return nil }
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	if o.ByHand == nil {
		o.ByHand = func(path string) string { return "docker dtr backup restore --yes --no-safety-backup " + path }
	}
	if o.Cleanup == nil {
		o.Cleanup = func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 15*time.Minute)
		}
	}
}

// failed puts t back after a failed Apply and says what state it is in.
// It runs before what was stopped is started again.
func failed(ctx context.Context, t Target, o Options, cause error) error {
	w := t.Words()
	what := "failed"
	if ctx.Err() != nil {
		// What broke off says only "context canceled", or the driver's
		// "query timeout".
		what, cause = "was interrupted", errors.New("interrupted")
	}
	again := "run the restore again with --force once the cause is fixed"
	if o.journaled {
		again = "once the cause is fixed, finish it with: " + o.ResumeCmd
	}
	if !t.CanRollBack() {
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s, %s: %s: %w", w.Name, what, w.NotPutBack, again, cause))
	}
	o.Log("restore %s: %s", what, w.PuttingBack)
	rctx, cancel := o.Cleanup()
	defer cancel()
	err := t.Rollback(rctx)
	if r, ok := t.(Reconnector); ok && err != nil && rctx.Err() == nil {
		// The connection may be what failed: once more on a new one.
		o.Log("putting back failed (%v): trying again on a new connection", err)
		if err = r.Reconnect(rctx); err == nil {
			err = t.Rollback(rctx)
		}
	}
	w = t.Words()
	safety := t.SafetyPath()
	switch {
	case err == nil && safety != "":
		return fmt.Errorf("restore of %s %s, and %s from the safety backup %s: %w", w.Name, what, w.PutBack, safety, cause)
	case err == nil:
		return fmt.Errorf("restore of %s %s, and %s: %w", w.Name, what, w.Undone, cause)
	case safety != "" && o.journaled:
		// --undo empties what it puts back first, and drops what the
		// restore created: no note.
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): finish by hand, once the cause is fixed, with: %s",
			w.Name, what, cause, w.PutBackFailed, err, o.UndoCmd))
	case safety != "":
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): finish by hand, once the cause is fixed, with: %s%s",
			w.Name, what, cause, w.PutBackFailed, err, o.ByHand(safety), w.ByHandNote))
	case o.journaled:
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): %s; once the cause is fixed, finish it with: %s, or undo it with: %s",
			w.Name, what, cause, w.UndoFailed, err, w.PartlyRestored, o.ResumeCmd, o.UndoCmd))
	default:
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): %s; %s",
			w.Name, what, cause, w.UndoFailed, err, w.PartlyRestored, again))
	}
}
