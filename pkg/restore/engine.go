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
package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
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
}

// Run restores into t. The error says what state t is in; exitcode.Of
// gives its exit status.
func Run(ctx context.Context, t Target, o Options) error {
	o.defaults()
	w := t.Words()
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
	restart, err := t.Stop(ctx)
	defer func() {
		// After the rollback: what was stopped comes back on the target as
		// it is meant to stay.
		if restart == nil {
			return
		}
		if rerr := restart(); rerr != nil {
			o.Warn("%v", rerr)
		}
	}()
	if err != nil {
		return fmt.Errorf("restore of %s failed before %s: %w", w.Name, w.BeforeChange, err)
	}
	if err := t.Apply(ctx); err != nil {
		return failed(ctx, t, o, err)
	}
	return nil
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
	if !t.CanRollBack() {
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s, %s: run the restore again with --force once the cause is fixed: %w", w.Name, what, w.NotPutBack, cause))
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
	case safety != "":
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): finish by hand, once the cause is fixed, with: %s%s",
			w.Name, what, cause, w.PutBackFailed, err, o.ByHand(safety), w.ByHandNote))
	default:
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and %s failed too (%v): %s; run the restore again with --force once the cause is fixed",
			w.Name, what, cause, w.UndoFailed, err, w.PartlyRestored))
	}
}
