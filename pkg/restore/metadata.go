package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// Database is the RethinkDB a metadata backup is restored into, and the
// work a restore does there (pkg/metadata's, directly or next to the
// database: pkg/dtrdb).
type Database interface {
	// Plan compares a verified backup with the database.
	Plan(ctx context.Context, rep *archive.Report) (*metadata.Plan, error)
	// Dump writes the tables o selects to w, under a progress phase of
	// that title.
	Dump(ctx context.Context, w io.Writer, o metadata.BackupOptions, phase string) (*archive.Manifest, error)
	// Load restores the backup open reads as plan says, replacing what
	// exists (metadata.RestoreFrom).
	Load(ctx context.Context, open archive.Source, rep *archive.Report, plan *metadata.Plan, o metadata.RestoreOptions) ([]metadata.TableResult, error)
	// Undo drops what a failed restore of plan created.
	Undo(ctx context.Context, plan *metadata.Plan) error
	// Reconnect opens a new way in, after a lost one.
	Reconnect(ctx context.Context) error
}

// Metadata is a verified metadata backup on its way into a database's
// tables: a Target.
type Metadata struct {
	Name string
	// Backup is read once for each pass (VerifyMetadata's check, the
	// load, the key check): an encrypted one decrypted anew each time,
	// and each pass must read what the verified one did.
	Backup *backupfile.Input
	Report *archive.Report
	Plan   *metadata.Plan
	DB     Database
	// Where names the database ("replica X on node Y").
	Where string
	// Docker stops and starts Containers, those that use the database;
	// nil in direct mode (--rethinkdb-addr), where none can be.
	Docker     dtr.Starter
	Containers []dtr.Container
	// Version and ReplicaID are the target's, for the safety backup.
	Version, ReplicaID string
	// Safety is where what the restore replaces is saved; empty when
	// nothing is replaced, or --no-safety-backup.
	Safety string
	// SafetySeal encrypts the safety backup (the backup's own
	// Protection, so that the same secret reads it); nil writes it in
	// clear.
	SafetySeal *backupfile.Protection
	Writers    int
	Progress   *progress.Printer
	// Stderr is told the safety backup's path, whatever the progress mode.
	Stderr io.Writer
	// Results are the tables loaded, once Apply has succeeded.
	Results []metadata.TableResult
	// Before is, for --resume and --undo, the plan of the restore the
	// journal recorded: what a rollback drops is what that one created.
	Before *metadata.Plan
	// StorageDiffers says how the image storage in the backup's settings
	// differs from the target's (StorageDifference); empty when they
	// agree or either is unknown. It needs --force.
	StorageDiffers string `json:"-"`
}

var _ Reconnector = (*Metadata)(nil)

func (m *Metadata) Words() Words {
	w := Words{
		Name:           m.Name,
		BeforeChange:   "changing the database",
		PuttingBack:    "putting back what was there before",
		PutBack:        "the tables it replaced were put back",
		Undone:         "the tables it created were dropped again; nothing else had been there",
		PutBackFailed:  "putting the safety backup back",
		UndoFailed:     "dropping the tables it created",
		PartlyRestored: "the target is partly restored",
	}
	if n := len(m.Plan.Replaced()); n > 0 {
		w.Unprotected = "what it replaces (" + human.Plural(n, "table") + ")"
	}
	if created := m.Plan.Created(); len(created) > 0 {
		w.ByHandNote = "; then drop the tables it created: " + strings.Join(created, ", ")
	}
	return w
}

func (m *Metadata) Refuse(force, terminal bool) error {
	for _, w := range m.Plan.Warnings {
		m.Progress.Warn("%s", w)
	}
	if m.StorageDiffers != "" {
		if !force {
			return fmt.Errorf("%s: the restored settings would point the registry at the backup's storage; DTR's guidance is never to change storage between a backup and its restore: pass --force to restore all the same", m.StorageDiffers)
		}
		m.Progress.Warn("%s: the restored settings point the registry at the backup's storage (--force)", m.StorageDiffers)
	}
	if o := m.outdated(); o != nil {
		if !force && !terminal {
			return fmt.Errorf("%s is an outdated backup: %s; pass --force to restore it all the same", m.Name, OutdatedLine(o))
		}
		m.Progress.Warn("%s is an outdated backup: %s", m.Name, OutdatedLine(o))
	}
	if replaced := m.Plan.Replaced(); len(replaced) > 0 && !force && !terminal {
		return fmt.Errorf("refusing to replace %d existing tables (%s): pass --force to drop and restore them",
			len(replaced), strings.Join(m.Plan.Existing(), ", "))
	}
	return nil
}

// outdated is the backup's record of an outdated read, if any.
func (m *Metadata) outdated() *archive.Outdated {
	if m.Report == nil {
		return nil
	}
	return m.Report.Outdated
}

// OutdatedLine says what an outdated backup's record means.
func OutdatedLine(o *archive.Outdated) string {
	return fmt.Sprintf("%s read from RethinkDB server %s after DTR lost its majority (--allow-outdated), so the last writes the lost replicas took may be missing", human.Plural(len(o.Tables), "table"), o.Server)
}

func (m *Metadata) Question() string {
	if m.outdated() != nil {
		return fmt.Sprintf("Restore the OUTDATED backup %s into %s (%s)", m.Name, m.Where, human.Plural(len(m.Plan.Replaced()), "existing table")+" replaced")
	}
	if replaced := m.Plan.Replaced(); len(replaced) > 0 {
		return fmt.Sprintf("Restore %s into %s, replacing %d tables that hold data now", m.Name, m.Where, len(replaced))
	}
	return fmt.Sprintf("Restore %s into %s, creating %d tables", m.Name, m.Where, len(m.Plan.Created()))
}

func (m *Metadata) SafetyPath() string { return m.Safety }

// SafetyProtection says how the safety backup is protected (see the
// package's SafetyProtection).
func (m *Metadata) SafetyProtection() string { return sealedHow(m.SafetySeal) }

func (m *Metadata) CanRollBack() bool { return true }

// SaveSafety backs up the tables the restore replaces, and verifies the
// copy, before anything is changed.
func (m *Metadata) SaveSafety(ctx context.Context) error {
	replaced, prog := m.Plan.Replaced(), m.Progress
	prog.Step("saving the %s this restore replaces to %s, %s", human.Plural(len(replaced), "table"), m.Safety, m.SafetyProtection())
	write := func(out io.Writer) error {
		info := archive.Info{Tool: version.Tool(), DTRVersion: m.Version, ReplicaID: m.ReplicaID, Started: time.Now()}
		if info.DTRVersion == "" {
			info.DTRVersion = m.Report.DTRVersion
		}
		opts := metadata.BackupOptions{Info: info, Only: replaced, Parallel: min(m.Writers, metadata.DefaultParallel())}
		_, err := m.DB.Dump(ctx, out, opts, "saving the safety backup")
		if err == nil {
			prog.Done()
		}
		prog.Close()
		return err
	}
	check := func(in *backupfile.Input) error {
		_, err := verifySafety(in)
		return err
	}
	if err := saveSafetyStreamed(m.Progress, m.Safety, m.SafetySeal, write, func(err error) error { return err }, check); err != nil {
		return err
	}
	fmt.Fprintf(m.Stderr, "safety backup of the %s this restore replaces: %s\n", human.Plural(len(replaced), "table"), m.Safety)
	return nil
}

func (m *Metadata) Stop(ctx context.Context) (func() error, error) {
	if m.Docker == nil {
		m.Progress.Warn("with --rethinkdb-addr no DTR containers are stopped: stop the replica's containers other than dtr-rethinkdb-<id> while it loads")
		return nil, nil
	}
	return dtr.Stop(ctx, m.Docker, m.Containers, m.Progress.Step)
}

// Apply loads the tables, checking each one's row count.
func (m *Metadata) Apply(ctx context.Context) error {
	prog := m.Progress
	prog.Phase("loading tables", m.Report.Rows, m.Report.Bytes)
	results, err := m.DB.Load(ctx, m.Backup.Pass, m.Report, m.Plan, metadata.RestoreOptions{Writers: m.Writers, Progress: prog})
	if err == nil {
		prog.Set(m.Report.Rows, m.Report.Bytes) // every row loaded: counts checked
		prog.Done()
	}
	prog.Close() // the rollback's messages come below the last counts
	if err != nil {
		// The engine says what state the target is in.
		var partial *metadata.PartialError
		if errors.As(err, &partial) {
			err = partial.Err
		}
		return err
	}
	m.Results = results
	return nil
}

// verifySafety verifies a metadata safety backup, in clear or as it is
// decrypted: an error when it did not verify.
func verifySafety(in *backupfile.Input) (*archive.Report, error) {
	verify := func() (*archive.Report, error) { return archive.VerifyStream(in.Pass) }
	if in.Plain == nil {
		verify = func() (*archive.Report, error) { return archive.Verify(in.File) }
	}
	rep, err := verify()
	if err == nil && !rep.OK() {
		err = errors.New(rep.Problems[0].Message)
	}
	return rep, err
}

func (m *Metadata) Reconnect(ctx context.Context) error { return m.DB.Reconnect(ctx) }

// Rollback drops what the restore created and loads the safety backup.
func (m *Metadata) Rollback(ctx context.Context) error {
	undo := m.Plan
	if m.Before != nil {
		undo = m.Before
	}
	if err := m.DB.Undo(ctx, undo); err != nil {
		return err
	}
	if m.Safety == "" {
		return nil
	}
	return withSafetyStreamed(m.Safety, m.SafetySeal, func(in *backupfile.Input) error {
		rep, err := verifySafety(in)
		if err != nil {
			return err
		}
		plan, err := m.DB.Plan(ctx, rep)
		if err != nil {
			return err
		}
		if _, err = m.DB.Load(ctx, in.Pass, rep, plan, metadata.RestoreOptions{Writers: m.Writers, Progress: m.Progress}); err != nil {
			return err
		}
		m.Progress.Step("put back %s from %s", human.Plural(len(plan.Tables), "table"), m.Safety)
		return nil
	})
}

// PlanMetadata plans the restore of t, a verified metadata backup, into
// t.DB: which tables it creates and which it replaces, and where what it
// replaces is saved first (in safetyDir, or beside input; nowhere when
// noSafety), sealed with t.SafetySeal. It changes nothing.
func PlanMetadata(ctx context.Context, t *Metadata, safetyDir, input string, noSafety bool) error {
	plan, err := t.DB.Plan(ctx, t.Report)
	if err != nil {
		return err
	}
	t.Plan = plan
	if s, ok := t.DB.(storageReader); ok && t.Backup != nil {
		t.StorageDiffers = compareStorage(ctx, s, t)
	}
	if len(plan.Replaced()) > 0 && !noSafety {
		if err := checkSeal(t.SafetySeal); err != nil {
			return err
		}
		t.Safety = safetyPathFor(safetyDir, input, "metadata", t.ReplicaID, t.SafetySeal)
	}
	return nil
}

// CheckVersion refuses a backup of DTR backup into DTR target of another
// major.minor version, unless allow (--allow-version-mismatch), when it
// only warns. An unknown target version ("") is not checked.
func CheckVersion(name, backup, target string, allow bool, warn func(string, ...any)) error {
	if target == "" || dtrversion.SameMajorMinor(backup, target) {
		return nil
	}
	if !allow {
		return fmt.Errorf("%s is a backup of DTR %s, the target is DTR %s: restore into the same major.minor version, or pass --allow-version-mismatch", name, backup, target)
	}
	warn("restoring a backup of DTR %s into DTR %s (--allow-version-mismatch)", backup, target)
	return nil
}

// compareStorage is StorageDifference of the backup's settings and the
// target's; a side that cannot be read is said, and not compared.
func compareStorage(ctx context.Context, s storageReader, t *Metadata) string {
	backup, err := BackupStorage(t.Backup.Pass, t.Report)
	if err != nil {
		t.Progress.Step("where the backup's DTR kept its images could not be read (%v): not compared with the target", err)
		return ""
	}
	if !backup.Known() {
		return ""
	}
	target, err := s.Storage(ctx)
	if err != nil {
		t.Progress.Step("where the target keeps its images could not be read (%v): not compared with the backup's %s", err, backup)
		return ""
	}
	return StorageDifference(backup, target)
}
