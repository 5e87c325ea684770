package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// metadataRestore is one verified metadata backup on its way into a
// connected target, with its safety net.
type metadataRestore struct {
	dockerCli command.Cli
	opts      restoreOptions
	prog      *progress.Printer
	tgt       *target
	name      string
	file      *os.File
	rep       *archive.Report
	plan      *metadata.Plan
	version   string
	// stop are the containers that use the database while it is replaced.
	stop []dtr.Container
	// safetyPath is where what the restore replaces is saved; empty when
	// nothing is replaced or --no-safety-backup.
	safetyPath string
}

// metadataPlan is --dry-run --format json.
type metadataPlan struct {
	*metadata.Plan
	Stop         []string `json:"stop"`
	Bytes        int64    `json:"bytes"`
	SafetyBackup string   `json:"safetyBackup,omitempty"`
}

func (r *metadataRestore) replicaID() string {
	if r.tgt.replica != nil {
		return r.tgt.replica.ID
	}
	return r.opts.target.replicaID
}

// sameTarget is the way back in for a command run by hand: the replica
// this restore chose, whether or not --replica-id named it.
func (r *metadataRestore) sameTarget() *targetOptions {
	t := r.opts.target
	t.replicaID = r.replicaID()
	return &t
}

func (r *metadataRestore) stopNames() []string {
	names := []string{}
	for _, c := range r.stop {
		names = append(names, c.Name)
	}
	return names
}

func (r *metadataRestore) printPlan() error {
	if r.opts.format == "json" {
		return writeJSON(r.dockerCli, metadataPlan{Plan: r.plan, Stop: r.stopNames(), Bytes: r.rep.Bytes, SafetyBackup: r.safetyPath})
	}
	out := r.dockerCli.Out()
	fmt.Fprintf(out, "Dry run: restoring %s into %s would:\n", r.name, r.tgt.where())
	switch {
	case r.safetyPath != "":
		fmt.Fprintf(out, "save the %s it replaces to %s\n", plural(len(r.plan.Replaced()), "table"), r.safetyPath)
	case len(r.plan.Replaced()) > 0:
		fmt.Fprintf(out, "replace %s without a safety backup (--no-safety-backup)\n", plural(len(r.plan.Replaced()), "table"))
	}
	if r.tgt.replica != nil {
		fmt.Fprintf(out, "stop %s\n", orNone(r.stopNames()))
	}
	r.plan.Print(out)
	fmt.Fprintf(out, "write %d rows, %s of documents\n", r.rep.Rows, archive.HumanBytes(r.rep.Bytes))
	if r.tgt.replica != nil {
		fmt.Fprintf(out, "start %s again\n", orNone(r.stopNames()))
	}
	if existing := r.plan.Replaced(); len(existing) > 0 && !r.opts.force && !r.dockerCli.In().IsTerminal() {
		fmt.Fprintf(out, "refuse without --force: %s already exist\n", plural(len(existing), "table"))
	}
	return nil
}

// run confirms, saves the safety backup, stops the DTR containers, loads,
// and puts the safety backup back when loading fails.
func (r *metadataRestore) run(ctx context.Context) error {
	prog, opts := r.prog, r.opts
	replaced := r.plan.Replaced()
	for _, w := range r.plan.Warnings {
		prog.Warn("%s", w)
	}
	if !opts.force {
		if len(replaced) > 0 && !r.dockerCli.In().IsTerminal() {
			return fmt.Errorf("refusing to replace %d existing tables (%s): pass --force to drop and restore them",
				len(replaced), strings.Join(r.plan.Existing(), ", "))
		}
		q := fmt.Sprintf("Restore %s into %s, creating %d tables", r.name, r.tgt.where(), len(r.plan.Created()))
		if len(replaced) > 0 {
			q = fmt.Sprintf("Restore %s into %s, replacing %d tables that hold data now", r.name, r.tgt.where(), len(replaced))
		}
		if err := confirm(ctx, r.dockerCli, q+"?"); err != nil {
			return err
		}
	}
	switch {
	case r.safetyPath != "":
		if err := r.saveSafety(ctx); err != nil {
			return err
		}
	case len(replaced) > 0:
		prog.Warn("no safety backup (--no-safety-backup): if this restore fails, what it replaces (%s) is lost", plural(len(replaced), "table"))
	}
	if r.tgt.replica == nil {
		prog.Warn("with --rethinkdb-addr no DTR containers are stopped: stop the replica's containers other than dtr-rethinkdb-<id> while it loads")
	}

	restart, err := dtr.Stop(ctx, r.dockerCli.Client(), r.stop, prog.Step)
	defer func() {
		if rerr := restart(); rerr != nil {
			prog.Warn("%v", rerr)
		}
	}()
	if err != nil {
		return fmt.Errorf("restore of %s failed before changing the database: %w", r.name, err)
	}
	prog.Phase("loading tables", r.rep.Rows, r.rep.Bytes)
	results, err := metadata.Restore(ctx, r.tgt.sess, r.file, r.rep, r.plan, metadata.RestoreOptions{
		Force: true, Writers: opts.writers, Progress: prog,
	})
	if err == nil {
		prog.Set(r.rep.Rows, r.rep.Bytes) // every row loaded: counts checked
		prog.Done()
	}
	prog.Close() // the rollback's messages come below the last counts
	if err != nil {
		// The safety net below says what state the target is in.
		var partial *metadata.PartialError
		if errors.As(err, &partial) {
			err = partial.Err
		}
		return r.failed(ctx, r.tgt.explain(err))
	}
	if opts.format == "json" {
		return writeJSON(r.dockerCli, results)
	}
	var rows int64
	tw := tabwriter.NewWriter(r.dockerCli.Out(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	for _, res := range results {
		rows += res.Rows
		fmt.Fprintf(tw, "%s\t%d\n", res.Table, res.Rows)
	}
	tw.Flush()
	fmt.Fprintf(r.dockerCli.Out(), "restored %s into %s: %d tables, %d rows, row counts checked\n", r.name, r.tgt.where(), len(results), rows)
	return nil
}

// saveSafety backs up the tables the restore replaces, and verifies the
// copy, before anything is changed.
func (r *metadataRestore) saveSafety(ctx context.Context) error {
	replaced := r.plan.Replaced()
	r.prog.Step("saving the %s this restore replaces to %s", plural(len(replaced), "table"), r.safetyPath)
	out, err := atomicfile.Create(r.safetyPath)
	if err != nil {
		return fmt.Errorf("cannot write the safety backup (choose another place with --safety-dir, or --no-safety-backup): %w; nothing was changed", err)
	}
	defer out.Abort()
	info := archive.Info{Tool: version.Tool(), DTRVersion: r.version, ReplicaID: r.replicaID(), Started: time.Now()}
	if info.DTRVersion == "" {
		info.DTRVersion = r.rep.DTRVersion
	}
	r.prog.Phase("saving the safety backup", estimateRows(ctx, r.tgt.sess, nil, replaced, r.prog), 0)
	_, err = metadata.Backup(ctx, r.tgt.sess, out, metadata.BackupOptions{Info: info, Only: replaced, Progress: r.prog, Parallel: min(r.opts.writers, metadata.DefaultParallel())})
	if err == nil {
		r.prog.Done()
	}
	r.prog.Close()
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return fmt.Errorf("saving the safety backup %s failed, nothing was changed: %w", r.safetyPath, r.tgt.explain(err))
	}
	f, err := os.Open(r.safetyPath)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := archive.Verify(f)
	if err == nil && !rep.OK() {
		err = fmt.Errorf("%s", rep.Problems[0].Message)
	}
	if err != nil {
		return fmt.Errorf("the safety backup %s did not verify, nothing was changed: %w", r.safetyPath, err)
	}
	fmt.Fprintf(r.dockerCli.Err(), "safety backup of the %s this restore replaces: %s\n", plural(len(replaced), "table"), r.safetyPath)
	return nil
}

// failed puts things back after a failed load and says what state the
// target is in.
func (r *metadataRestore) failed(ctx context.Context, cause error) error {
	what := "failed"
	if ctx.Err() != nil {
		// The driver's own word for a cancelled query is "query timeout".
		what, cause = "was interrupted", errors.New("interrupted")
	}
	r.prog.Step("restore %s: putting back what was there before", what)
	rctx, cancel := cleanupContext()
	defer cancel()
	err := r.rollback(rctx)
	if err != nil && rctx.Err() == nil {
		// The connection may be what failed: once more on a new one.
		r.prog.Step("putting back failed (%v): trying again on a new connection", err)
		if err = r.tgt.reconnect(rctx, r.dockerCli, r.prog, r.opts.writers+1); err == nil {
			err = r.rollback(rctx)
		}
	}
	switch {
	case err == nil && r.safetyPath != "":
		return fmt.Errorf("restore of %s %s, and the tables it replaced were put back from the safety backup %s: %w", r.name, what, r.safetyPath, cause)
	case err == nil:
		return fmt.Errorf("restore of %s %s, and the tables it created were dropped again; nothing else had been there: %w", r.name, what, cause)
	case r.safetyPath != "":
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and putting the safety backup back failed too (%v): finish by hand, once the cause is fixed, with: %s",
			r.name, what, cause, err, byHand(r.dockerCli, r.sameTarget(), r.version, r.safetyPath)+r.dropNote()))
	default:
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and dropping the tables it created failed too (%v): the target is partly restored; run the restore again with --force once the cause is fixed",
			r.name, what, cause, err))
	}
}

// dropNote names tables the failed restore created beyond what the safety
// backup puts back.
func (r *metadataRestore) dropNote() string {
	if created := r.plan.Created(); len(created) > 0 {
		return "; then drop the tables it created: " + strings.Join(created, ", ")
	}
	return ""
}

// rollback drops what the restore created and loads the safety backup.
func (r *metadataRestore) rollback(ctx context.Context) error {
	sess := r.tgt.sess
	if sess == nil {
		return errors.New("not connected")
	}
	if err := r.plan.Undo(ctx, sess); err != nil {
		return err
	}
	if r.safetyPath == "" {
		return nil
	}
	f, err := os.Open(r.safetyPath)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := archive.Verify(f)
	if err != nil {
		return err
	}
	plan, err := metadata.MakePlan(ctx, sess, rep)
	if err != nil {
		return err
	}
	_, err = metadata.Restore(ctx, sess, f, rep, plan, metadata.RestoreOptions{Force: true, Writers: r.opts.writers, Progress: r.prog})
	if err != nil {
		return r.tgt.explain(err)
	}
	r.prog.Step("put back %s from %s", plural(len(plan.Tables), "table"), r.safetyPath)
	return nil
}
