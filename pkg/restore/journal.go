package restore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
)

// Resume finishes the restore that rec records, which a kill (or a failed
// rollback) left unfinished: t is rec's backup, verified and planned again,
// whose safety backup is rec's. It stops what uses the target now, loads
// and checks the backup, and starts again what it stopped and what rec's
// run had stopped. A failed load is put back, as Run does. The journal goes
// once it has finished, either way.
func Resume(ctx context.Context, t Target, rec *journal.Record, o Options) error {
	o.defaults()
	o.journaled = true
	if err := o.confirmJournal(ctx, fmt.Sprintf("Finish the restore of %s into %s that started %s", t.Words().Name, rec.Where(), rec.Started.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	return finish(ctx, t, rec, &o, func() error {
		if err := t.Apply(ctx); err != nil {
			return failed(ctx, t, o, err)
		}
		return nil
	})
}

// Undo puts back what the restore that rec records replaced: t's rollback,
// from rec's safety backup (or, when the target was empty, by removing what
// the restore added). It stops what uses the target now, and starts again
// what it stopped and what rec's run had stopped. The journal goes once
// that has worked; when it fails, the journal stays for the next --undo.
func Undo(ctx context.Context, t Target, rec *journal.Record, o Options) error {
	o.defaults()
	o.journaled = true
	if !rec.CanUndo() {
		return fmt.Errorf("the restore of %s into %s took no safety backup (--no-safety-backup): what it replaced cannot be put back; finish it with: %s", rec.Backup, rec.Where(), o.ResumeCmd)
	}
	what := "put back what it replaced"
	if rec.Safety != "" {
		what += " from the safety backup " + rec.Safety
	}
	if err := o.confirmJournal(ctx, fmt.Sprintf("Undo the restore of %s into %s that started %s, and %s", rec.Backup, rec.Where(), rec.Started.UTC().Format(time.RFC3339), what)); err != nil {
		return err
	}
	return finish(ctx, t, rec, &o, func() error {
		w := t.Words()
		o.Log("%s", w.PuttingBack)
		err := t.Rollback(ctx)
		if r, ok := t.(Reconnector); ok && err != nil && ctx.Err() == nil {
			o.Log("putting back failed (%v): trying again on a new connection", err)
			if err = r.Reconnect(ctx); err == nil {
				err = t.Rollback(ctx)
			}
		}
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		if err != nil {
			return exitcode.ByHandError(fmt.Errorf("undoing the restore of %s failed (%v): %s; run it again once the cause is fixed: %s", rec.Backup, err, w.PartlyRestored, o.UndoCmd))
		}
		return nil
	})
}

// confirmJournal asks before --resume or --undo, unless --force.
func (o *Options) confirmJournal(ctx context.Context, question string) error {
	if o.Force {
		return nil
	}
	return o.Confirm(ctx, question+"?")
}

// Journal records a metadata restore: the tables it replaces and creates,
// and the containers it stops.
func (m *Metadata) Journal(r *journal.Record) {
	r.Kind, r.Replica = journal.KindMetadata, m.ReplicaID
	for _, c := range m.Containers {
		r.Containers = append(r.Containers, journal.Container{Name: c.Name, ID: c.ID})
	}
	plan := m.Plan
	if m.Before != nil {
		plan = m.Before
	}
	for _, t := range plan.Tables {
		r.Tables = append(r.Tables, journal.Table{DB: t.DB, Name: t.Name, Existed: t.Exists})
	}
	r.CreatedDBs = append(r.CreatedDBs, plan.CreateDBs...)
}

// JournalPlan is the plan of the restore rec records, as far as undoing it
// goes: the tables and databases it created, and those it replaced.
func JournalPlan(rec *journal.Record) *metadata.Plan {
	p := &metadata.Plan{CreateDBs: append([]string{}, rec.CreatedDBs...), Tables: []metadata.TablePlan{}, Warnings: []string{}}
	for _, t := range rec.Tables {
		p.Tables = append(p.Tables, metadata.TablePlan{Table: archive.Table{DB: t.DB, Name: t.Name}, Exists: t.Existed})
	}
	return p
}

// Journal records an image restore: the volume, whether it was empty, and
// the containers it stops.
func (t *Images) Journal(r *journal.Record) {
	r.Kind, r.Replica, r.Node = journal.KindImages, t.Replica.ID, t.Replica.Node
	r.Volume, r.VolumeEmpty, r.ToVolume = t.Volume.Name, t.Plan.VolumeEmpty, t.ToVolume
	for _, c := range t.Volume.Users() {
		r.Containers = append(r.Containers, journal.Container{Name: c.Name, ID: c.ID})
	}
}
