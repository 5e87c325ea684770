package repair

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
)

// Wait bounds how long one table is waited for after a change: ready for
// writes after a repair (half a second on the real server), all replicas
// ready after a rescale (the copy of the table to the new servers).
var (
	WriteWait   = time.Minute
	ReplicaWait = 10 * time.Minute
)

// Revert is the emergency repair of a table that takes no writes: its
// configuration goes back to the replicas this server reaches. It returns
// at once; the table takes writes once they have elected a primary
// (Settle waits for it), so that the elections of all tables overlap.
// Run again on a table it reverted, it changes nothing.
func Revert(ctx context.Context, sess *rethink.Session, t Table) error {
	if t.Action != ActionRepair {
		return nil
	}
	return sess.EmergencyRepair(ctx, t.Ref())
}

// Settle waits until a changed table takes writes, then has it keep only
// the replicas this server reaches, and waits again.
func Settle(ctx context.Context, sess *rethink.Session, t Table) error {
	if t.Action == ActionNone {
		return nil
	}
	if err := sess.Wait(ctx, t.Ref(), rethink.ReadyForWrites, WriteWait); err != nil {
		return err
	}
	if len(t.Unreachable) > 0 && len(t.Stays) > 0 {
		if err := sess.SetReplicas(ctx, t.Ref(), len(t.Stays)); err != nil {
			return err
		}
		return sess.Wait(ctx, t.Ref(), rethink.ReadyForWrites, WriteWait)
	}
	return nil
}

// Rescale gives t n replicas and waits until all of them are ready: the
// step after new replicas have joined.
func Rescale(ctx context.Context, sess *rethink.Session, t Table, n int) error {
	if err := sess.SetReplicas(ctx, t.Ref(), n); err != nil {
		return err
	}
	return sess.Wait(ctx, t.Ref(), rethink.AllReplicasReady, ReplicaWait)
}

// DB is the surviving replica's database, as Run works on it: through
// the database helper on its node, or directly.
type DB interface {
	Health(ctx context.Context) (*dbhealth.Health, error)
	// Revert, Settle and Rescale run the functions of those names on the
	// table.
	Revert(ctx context.Context, t Table) error
	Settle(ctx context.Context, t Table) error
	Rescale(ctx context.Context, t Table, n int) error
}

// Progress hears about the work.
type Progress interface {
	Step(format string, args ...any)
}

// Options say what Run does.
type Options struct {
	// DryRun plans and stops: nothing is changed, nothing recorded.
	DryRun bool
	// Replicas, when above 0, gives every DTR table that many replicas
	// once it takes writes (after new replicas joined).
	Replicas int
	// Journal records the run before anything is changed (Record is its
	// start: replica, node, owner), and is removed once the tables take
	// writes. A repair journal found there is finished.
	Journal journal.Store
	Record  journal.Record
	// Confirm asks before anything is changed; nil goes on (--force).
	Confirm func(p *Plan, resuming bool) error
	// Safety backs up the survivor before anything is changed and says
	// where; nil for none (--no-safety-backup).
	Safety func(ctx context.Context) (path, sha256 string, err error)
	// Progress hears about each step; nil for none.
	Progress Progress
}

// Result is what Run did, or would do (DryRun).
type Result struct {
	Plan *Plan `json:"plan"`
	// Resumed says a repair killed halfway was finished.
	Resumed bool `json:"resumed"`
	DryRun  bool `json:"dryRun"`
	// Changed are the tables changed, as db.table, and Rescaled those
	// given Replicas replicas.
	Changed  []string `json:"changed"`
	Rescaled []string `json:"rescaled"`
	Replicas int      `json:"replicas,omitempty"`
	Safety   string   `json:"safetyBackup,omitempty"`
	// After is the survivor's view once done.
	After *dbhealth.Health `json:"after,omitempty"`
	Took  time.Duration    `json:"tookNanoseconds"`
}

// NothingToRepairError is a repair refused: every DTR table has a
// majority of its replicas reachable, and takes writes or soon will.
type NothingToRepairError struct {
	Server string
	Tables int
	// Electing are the tables still electing a primary.
	Electing []string
}

func (e *NothingToRepairError) Error() string {
	const rescale = "; --replicas N gives the tables N replicas once new replicas have joined"
	if len(e.Electing) > 0 {
		return fmt.Sprintf("nothing to repair: RethinkDB server %s has its majority: it reaches a majority of the replicas of all %d of DTR's tables, and %s will take writes once they have elected a new primary, within seconds (docker dtr status shows when)%s",
			e.Server, e.Tables, human.List(e.Electing, 3), rescale)
	}
	return fmt.Sprintf("nothing to repair: RethinkDB server %s has its majority and all %d of DTR's tables take writes (docker dtr status says the database is healthy)%s", e.Server, e.Tables, rescale)
}

// NothingToRepair is the refusal of plan p's repair, nil where a table
// has lost the majority of its replicas.
func NothingToRepair(p *Plan) error {
	if len(p.Lost()) > 0 {
		return nil
	}
	return &NothingToRepairError{Server: p.Server, Tables: len(p.Tables), Electing: Names(p.Electing())}
}

// PendingError is a repair refused because a restore's journal is there.
type PendingError struct {
	Record *journal.Record
	Where  string
}

func (e *PendingError) Error() string {
	kind := "a metadata restore"
	if e.Record.Kind == journal.KindImages {
		kind = "an image restore"
	}
	return fmt.Sprintf("%s into replica %s is unfinished (journal: %s): finish or undo it first (docker dtr status says how)", kind, e.Record.Replica, e.Where)
}

type noProgress struct{}

func (noProgress) Step(string, ...any) {}

// Run repairs the database db reaches from the surviving server: it
// refuses when nothing needs repair (unless Replicas asks for a rescale),
// plans, asks, backs up the survivor, records the run, repairs every
// table that takes no writes, drops the lost replicas, rescales when
// asked, and checks that every DTR table takes writes. A journal of a
// repair killed halfway is found and the repair finished.
func Run(ctx context.Context, db DB, o Options) (*Result, error) {
	began := time.Now()
	prog := o.Progress
	if prog == nil {
		prog = noProgress{}
	}
	rec, err := o.Journal.Load(ctx)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Kind != journal.KindRepair {
		return nil, &PendingError{Record: rec, Where: o.Journal.Where()}
	}
	resuming := rec != nil
	h, err := db.Health(ctx)
	if err != nil {
		return nil, err
	}
	plan := MakePlan(h)
	res := &Result{Plan: plan, Resumed: resuming, DryRun: o.DryRun, Changed: []string{}, Rescaled: []string{}, Replicas: o.Replicas}
	if s := plan.Stranded(); len(s) > 0 {
		return res, fmt.Errorf("cannot repair from RethinkDB server %s: it holds no replica of %s (their replicas are on %s): repair from the replica that holds them (--replica-id), or restore from a backup",
			plan.Server, human.List(Names(s), 4), strings.Join(s[0].Unreachable, ", "))
	}
	if o.Replicas > len(plan.Connected) {
		return res, fmt.Errorf("--replicas %d: RethinkDB server %s reaches %d servers (%s): join new replicas first (docker/dtr join), then give the tables as many replicas as there are servers",
			o.Replicas, plan.Server, len(plan.Connected), strings.Join(plan.Connected, ", "))
	}
	changes := plan.Changes()
	if nothing := NothingToRepair(plan); nothing != nil && !resuming && o.Replicas == 0 {
		return res, nothing
	}
	if o.DryRun {
		return res, nil
	}
	if o.Confirm != nil {
		if err := o.Confirm(plan, resuming); err != nil {
			return res, err
		}
	}
	if !resuming && len(changes) > 0 {
		r := o.Record
		r.Kind, r.Started = journal.KindRepair, time.Now().UTC()
		if o.Safety != nil {
			if r.Safety, r.SafetySHA256, err = o.Safety(ctx); err != nil {
				return res, fmt.Errorf("nothing was changed: the safety backup failed: %w", err)
			}
		}
		for _, t := range changes {
			r.Tables = append(r.Tables, journal.Table{DB: t.DB, Name: t.Name, Existed: true})
		}
		if err := o.Journal.Save(ctx, &r); err != nil {
			return res, fmt.Errorf("nothing was changed: %w", err)
		}
		rec = &r
	}
	if rec != nil {
		res.Safety = rec.Safety
	}
	lost := plan.Lost()
	for i, t := range lost {
		if err := db.Revert(ctx, t); err != nil {
			return res, fmt.Errorf("%w (%d of %d tables reverted; run docker dtr repair again to finish)", err, i, len(lost))
		}
		prog.Step("%s: reverted to %s (%d of %d)", t, strings.Join(t.Stays, ", "), i+1, len(lost))
	}
	for i, t := range changes {
		if err := db.Settle(ctx, t); err != nil {
			return res, fmt.Errorf("%w (%d of %d tables take writes on the survivor's replicas alone; run docker dtr repair again to finish)", err, i, len(changes))
		}
		res.Changed = append(res.Changed, t.String())
		if len(t.Unreachable) == 0 {
			prog.Step("%s: takes writes (%d of %d)", t, i+1, len(changes))
		} else {
			prog.Step("%s: takes writes, on %s alone (%d of %d)", t, strings.Join(t.Stays, ", "), i+1, len(changes))
		}
	}
	if o.Replicas > 0 {
		for i, t := range plan.Tables {
			if err := db.Rescale(ctx, t, o.Replicas); err != nil {
				return res, fmt.Errorf("%w (%d of %d tables given %d replicas)", err, i, len(plan.Tables), o.Replicas)
			}
			res.Rescaled = append(res.Rescaled, t.String())
			prog.Step("%s: %d replicas ready (%d of %d)", t, o.Replicas, i+1, len(plan.Tables))
		}
	}
	if res.After, err = db.Health(ctx); err != nil {
		return res, err
	}
	if left := MakePlan(res.After).Lost(); len(left) > 0 {
		return res, fmt.Errorf("%s still take no writes after the repair: run docker dtr repair again", human.List(Names(left), 4))
	}
	if rec != nil {
		if err := o.Journal.Remove(ctx); err != nil {
			return res, err
		}
	}
	res.Took = time.Since(began)
	return res, nil
}

// IsNothingToRepair says err is a NothingToRepairError.
func IsNothingToRepair(err error) bool {
	var n *NothingToRepairError
	return errors.As(err, &n)
}
