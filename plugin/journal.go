package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker/cli/cli/command"
)

// The restore journal (pkg/journal): where a command finds it, and what it
// says about one it finds.

// journalStore is where a restore into the target keeps its journal: on
// the replica's node (pkg/nodejournal), or, for a RethinkDB reached
// directly, in a file of the user's configuration directory.
func journalStore(dockerCli command.Cli, tgt *targetOptions, replica *dtr.Replica) (journal.Store, error) {
	if tgt.isDirect() {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("no place for the restore journal: %w", err)
		}
		return journal.FileStore{Path: journal.DirectPath(dir, tgt.direct.Addr)}, nil
	}
	return &nodejournal.Store{API: dockerCli.Client(), Replica: replica}, nil
}

// unfinished is a journal found: what status shows, and what the error of
// a refused command says.
type unfinished struct {
	Replica   string    `json:"replica,omitempty"`
	Kind      string    `json:"kind"`
	Backup    string    `json:"backup"`
	Started   time.Time `json:"started"`
	Safety    string    `json:"safetyBackup,omitempty"`
	Stopped   []string  `json:"stopped"`
	State     string    `json:"state"` // "interrupted", "under way", or "unknown" (another machine's run)
	Journal   string    `json:"journal"`
	Resume    string    `json:"resume"`
	Undo      string    `json:"undo,omitempty"`
	Protected string    `json:"protection,omitempty"`
}

func describeJournal(dockerCli command.Cli, tgt *targetOptions, rec *journal.Record, where string) unfinished {
	u := unfinished{
		Replica: rec.Replica, Kind: rec.Kind, Backup: rec.Backup, Started: rec.Started, Safety: rec.Safety,
		Stopped: rec.Names(), State: "unknown", Journal: where, Protected: rec.Protection,
		Resume: journalCommand(dockerCli, tgt, rec.Replica, "--resume", secretHint(rec)),
	}
	if u.Stopped == nil {
		u.Stopped = []string{}
	}
	if rec.Kind == journal.KindRepair {
		u.Resume = shellJoin(dtrCommand(dockerCli, tgt, rec.Replica, []string{"repair"}))
	}
	if alive, known := helpercontainer.Alive(rec.Owner); known {
		u.State = map[bool]string{true: "under way", false: "interrupted"}[alive]
	}
	if rec.CanUndo() {
		u.Undo = journalCommand(dockerCli, tgt, rec.Replica, "--undo", secretHint(rec))
	}
	return u
}

// String is the one line that says what was found and what to run.
func (u unfinished) String() string {
	var b strings.Builder
	where := "replica " + u.Replica
	if u.Replica == "" {
		where = "the database"
	}
	state := "was interrupted"
	switch u.State {
	case "under way":
		state = "is under way"
	case "unknown":
		state = "is unfinished (interrupted, or under way on another machine)"
	}
	if u.Kind == journal.KindRepair {
		fmt.Fprintf(&b, "an emergency repair from %s, started %s, %s: some of DTR's tables may still take no writes, or keep replicas on lost servers (journal: %s); finish it with: %s",
			where, u.Started.UTC().Format(time.RFC3339), state, u.Journal, u.Resume)
		if u.Safety != "" {
			fmt.Fprintf(&b, " (its safety backup of the survivor: %s)", u.Safety)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "%s of %s into %s, started %s, %s", restoreKind(u.Kind), u.Backup, where, u.Started.UTC().Format(time.RFC3339), state)
	switch u.Kind {
	case journal.KindMetadata:
		b.WriteString(": its tables may be half loaded")
	default:
		b.WriteString(": its image volume may be half written")
	}
	if len(u.Stopped) > 0 {
		fmt.Fprintf(&b, " and %s stopped", strings.Join(u.Stopped, ", "))
	}
	fmt.Fprintf(&b, " (journal: %s); finish it with: %s", u.Journal, u.Resume)
	if u.Undo != "" {
		fmt.Fprintf(&b, ", or put back what it replaced with: %s", u.Undo)
	}
	return b.String()
}

// restoreKind is "a metadata restore" or "an image restore".
func restoreKind(kind string) string {
	if kind == journal.KindImages {
		return "an image restore"
	}
	return "a metadata restore"
}

// journalCommand is the restore command that finishes a journal's restore
// (flag is --resume or --undo): the same way in, the same replica, and the
// files of the secrets (secrets) that open an encrypted backup or safety
// backup.
func journalCommand(dockerCli command.Cli, tgt *targetOptions, replica, flag string, secrets []string) string {
	return shellJoin(append(restoreCommand(dockerCli, tgt, replica, []string{flag}), secrets...))
}

// secretHint is, for a command printed by a later run that does not know
// the secrets' files, the flag an encrypted safety backup needs: a key
// file cannot be asked for, a passphrase can.
func secretHint(rec *journal.Record) []string {
	if strings.HasPrefix(rec.Protection, "encrypted to") {
		return []string{"--identity-file", "KEY_FILE"}
	}
	return nil
}

// blocking is the journal that a command of kind (metadata or images; ""
// for a restore of either) must not go past, before it chooses a replica
// (the replica an unfinished restore stopped is unhealthy): a metadata
// restore anywhere in the cluster for metadata (its tables are the whole
// cluster's); a restore of the kind on the replica that --replica-id names,
// or on any replica when none is named. nil when there is none.
func blocking(ctx context.Context, dockerCli command.Cli, tgt *targetOptions, kind string) (*unfinished, error) {
	if tgt.isDirect() {
		store, err := journalStore(dockerCli, tgt, nil)
		if err != nil {
			return nil, err
		}
		rec, err := store.Load(ctx)
		if rec == nil || err != nil {
			return nil, err
		}
		u := describeJournal(dockerCli, tgt, rec, store.Where())
		return &u, nil
	}
	found, err := nodejournal.List(ctx, dockerCli.Client())
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		r := f.Record
		sameKind := kind == "" || r.Kind == kind
		if (r.Kind == journal.KindMetadata && sameKind) || (sameKind && (tgt.replicaID == "" || r.Replica == tgt.replicaID)) {
			u := describeJournal(dockerCli, tgt, r, "container "+f.Container)
			return &u, nil
		}
	}
	return nil, nil
}

// refuseUnfinished refuses to go on (what: "back up", "restore") past a
// blocking journal.
func refuseUnfinished(ctx context.Context, dockerCli command.Cli, tgt *targetOptions, kind, what string) error {
	u, err := blocking(ctx, dockerCli, tgt, kind)
	if err != nil {
		return fmt.Errorf("cannot tell whether a restore is unfinished: %w", err)
	}
	if u != nil {
		return fmt.Errorf("refusing to %s: %s", what, u)
	}
	return nil
}

// pendingError says what the engine's refusal (a journal found where the
// restore would write its own) means, and what to run.
func pendingError(dockerCli command.Cli, tgt *targetOptions, err error) error {
	var p *restore.PendingError
	if errors.As(err, &p) {
		return fmt.Errorf("refusing to restore, nothing was changed: %s", describeJournal(dockerCli, tgt, p.Record, p.Where))
	}
	return err
}

// journalOptionsSum sets the restore engine's journal options for a
// restore of file into replica (nil in direct mode), whose content's
// SHA-256 is sum (hex, from the pass that verified it; "" for an image
// backup, which the journal names by its manifest's).
func journalOptionsSum(dockerCli command.Cli, o *restore.Options, tgt *targetOptions, dec decryptOptions, replica *dtr.Replica, file, sum string, prog interface {
	Step(string, ...any)
}) error {
	store, err := journalStore(dockerCli, tgt, replica)
	if err != nil {
		return err
	}
	backup := file
	if file != "-" {
		if backup, err = filepath.Abs(file); err != nil {
			return err
		}
	}
	id := ""
	if replica != nil {
		id = replica.ID
	}
	o.Journal, o.Backup, o.BackupSHA256 = store, backup, sum
	o.ResumeCmd = journalCommand(dockerCli, tgt, id, "--resume", dec.fileArgs())
	o.UndoCmd = journalCommand(dockerCli, tgt, id, "--undo", dec.fileArgs())
	o.Restart = func(ctx context.Context, cs []journal.Container) error {
		return startRecorded(ctx, dockerCli, cs, prog.Step)
	}
	return nil
}

// startRecorded starts the containers a journal says its restore stopped
// (one already running is left as it is), in the order DTR needs, and
// waits for them to report healthy (dtr.StartHealthy) unless the command
// was interrupted: ctx goes on after a signal, so that they start again.
func startRecorded(ctx context.Context, dockerCli command.Cli, cs []journal.Container, log func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	healthCtx, stop := untilClosed(ctx, interrupted)
	defer stop()
	var errs []error
	var start []dtr.Container
	for _, c := range cs {
		info, err := dockerCli.Client().ContainerInspect(ctx, c.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("starting %s again: %w (start it with: docker start %s)", c.Name, err, c.Name))
			continue
		}
		if info.ContainerJSONBase == nil || info.State == nil || !info.State.Running {
			start = append(start, dtr.Container{Name: c.Name, ID: c.ID})
		}
	}
	errs = append(errs, dtr.StartHealthy(ctx, healthCtx, dockerCli.Client(), start, log))
	return errors.Join(errs...)
}
