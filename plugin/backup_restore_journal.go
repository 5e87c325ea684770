package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
	"github.com/docker/cli/cli/command"
)

// runJournalRestore is --resume and --undo: it finds the journal of the
// target, and has the engine finish or undo the restore it records.
func runJournalRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions) error {
	switch {
	case opts.resume && opts.undo:
		return exitcode.UsageError(errors.New("--resume and --undo contradict each other: give one"))
	case opts.dryRun:
		return exitcode.UsageError(errors.New("--dry-run has no use with --resume or --undo: 'docker dtr status' shows the journal"))
	case opts.safety.dir != "" || opts.safety.skip:
		return exitcode.UsageError(errors.New("--safety-dir and --no-safety-backup have no use with --resume or --undo: the journal names the safety backup"))
	case opts.toVolume:
		return exitcode.UsageError(errors.New("--to-volume has no use with --resume or --undo: the journal says where the restore wrote"))
	}
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()

	flag := map[bool]string{true: "--resume", false: "--undo"}[opts.resume]
	same := opts.target
	var replica *dtr.Replica
	if !same.isDirect() {
		if same.replicaID == "" {
			id, err := onlyJournal(ctx, dockerCli, flag)
			if err != nil {
				return err
			}
			same.replicaID = id
		}
		var err error
		if replica, err = chooseReplica(ctx, dockerCli, &targetOptions{replicaFlags: same.replicaFlags, allowUnhealthy: true}, prog); err != nil {
			return err
		}
	}
	store, err := journalStore(dockerCli, &same, replica)
	if err != nil {
		return err
	}
	rec, err := store.Load(ctx)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("%s: no unfinished restore is recorded (%s): there is nothing to finish", flag, store.Where())
	}
	if err := checkSafety(rec); err != nil {
		return err
	}
	o := engineOptions(dockerCli, opts, prog, nil)
	o.Journal = store
	o.ResumeCmd = journalCommand(dockerCli, &same, rec.Replica, "--resume", opts.dec.fileArgs())
	o.UndoCmd = journalCommand(dockerCli, &same, rec.Replica, "--undo", opts.dec.fileArgs())
	o.Restart = func(ctx context.Context, cs []journal.Container) error {
		return startRecorded(ctx, dockerCli, cs, prog.Step)
	}
	if opts.resume {
		return resumeJournal(ctx, dockerCli, opts, &same, replica, rec, o, prog)
	}
	return undoJournal(ctx, dockerCli, opts, &same, replica, rec, o, prog)
}

// onlyJournal is the replica of the one journal on the cluster, for
// --resume or --undo without --replica-id.
func onlyJournal(ctx context.Context, dockerCli command.Cli, flag string) (string, error) {
	found, err := nodejournal.List(ctx, dockerCli.Client())
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s: no unfinished restore is recorded on the DTR behind this Docker context: there is nothing to finish", flag)
	case 1:
		return found[0].Record.Replica, nil
	}
	var ids []string
	for _, f := range found {
		ids = append(ids, f.Record.Replica)
	}
	return "", exitcode.UsageError(fmt.Errorf("%s: restores of replicas %s are unfinished: choose one with --replica-id", flag, strings.Join(ids, ", ")))
}

// checkSafety checks that the journal's safety backup is the file the
// restore saved.
func checkSafety(rec *journal.Record) error {
	if rec.Safety == "" {
		return nil
	}
	sum, err := journal.FileSHA256(rec.Safety)
	if err != nil {
		return fmt.Errorf("the safety backup of the unfinished restore: %w: put it back where it was, as the journal names it", err)
	}
	if sum != rec.SafetySHA256 {
		return fmt.Errorf("the safety backup %s is not the file the unfinished restore saved (its sha256 is %s, the journal's %s): put the original back", rec.Safety, sum, rec.SafetySHA256)
	}
	return nil
}

// resumeJournal loads the journal's backup again: FILE when given (it must
// be the same backup), else the path the journal names.
func resumeJournal(ctx context.Context, dockerCli command.Cli, opts restoreOptions, same *targetOptions, replica *dtr.Replica, rec *journal.Record, o restore.Options, prog *progress.Printer) error {
	file := opts.file
	switch {
	case file == "" && rec.Backup == "-":
		return exitcode.UsageError(errors.New("--resume: the unfinished restore read its backup from standard input: give the same backup again as FILE (- for standard input)"))
	case file == "":
		file = rec.Backup
	case file != "-" && rec.Backup != "-":
		abs, err := filepath.Abs(file)
		if err != nil {
			return err
		}
		if abs != rec.Backup {
			return exitcode.UsageError(fmt.Errorf("--resume %s: the unfinished restore was loading %s: leave FILE out, or give that one", file, rec.Backup))
		}
	}
	seal, err := safetySeal(dockerCli, rec, opts.dec, prog)
	if err != nil {
		return err
	}
	// An encrypted backup is read in passes, each decrypted anew (the
	// sum, the check, the load, the key check): each must read what the
	// first did.
	in, err := openInput(dockerCli, file, opts.dec, prog)
	if err != nil {
		return err
	}
	defer in.Close()
	name := displayName(file)
	// An image restore's journal names its backup by the verified
	// manifest's SHA-256, checked once the backup has verified below;
	// older journals, and a metadata restore's, by its content's.
	byManifest := rec.Kind == journal.KindImages && rec.BackupSHA256 == ""
	if !byManifest {
		sum, err := in.SHA256()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if sum != rec.BackupSHA256 {
			return fmt.Errorf("--resume: %s is not the backup the unfinished restore was loading: its content's sha256 is %s, the journal's %s", name, sum, rec.BackupSHA256)
		}
	}
	images, err := verify.IsImages(in)
	if err != nil {
		return err
	}
	if images != (rec.Kind == journal.KindImages) {
		return fmt.Errorf("--resume: %s is not a %s backup, which the unfinished restore was loading", name, rec.Kind)
	}
	if images {
		open, size := imageSource(in)
		rep, chain, err := restore.VerifyImages(open, size, name, imagearchive.ChainDir(file, opts.from), chainDecrypter(dockerCli, opts.dec, in, prog), prog)
		if err != nil {
			return refused(dockerCli, err)
		}
		defer chain.Close()
		if byManifest && rep.ManifestSHA256 != rec.ManifestSHA256 {
			return fmt.Errorf("--resume: %s is not the backup the unfinished restore was loading: its manifest's sha256 is %s, the journal's %s", name, rep.ManifestSHA256, rec.ManifestSHA256)
		}
		t := &restore.Images{
			Name: name, Open: open, Report: rep, Chain: chain, Replica: replica, Docker: dockerCli.Client(),
			AgentBinary: same.agentBinary, NoSafety: !rec.CanUndo(), Progress: prog, Stderr: dockerCli.Err(),
			SafetySeal: seal,
		}
		if err := imagesTarget(ctx, dockerCli, t, rec); err != nil {
			return err
		}
		restore.NewImages(t, rec.VolumeEmpty, rec.Safety)
		defer func() {
			if cerr := t.Close(); cerr != nil {
				prog.Warn("%v", cerr)
			}
		}()
		if err := restore.Resume(ctx, t, rec, o); err != nil {
			return err
		}
		return printImageResult(dockerCli, opts, t)
	}
	rep, err := restore.VerifyMetadata(in, name, prog)
	if err != nil {
		return refused(dockerCli, err)
	}
	t, done2, err := metadataTarget(ctx, dockerCli, opts, same, rec, prog)
	if err != nil {
		return err
	}
	defer done2()
	t.Name, t.Backup, t.Report = name, in, rep
	if err := restore.PlanMetadata(ctx, t, "", file, true); err != nil {
		return err
	}
	t.Safety, t.SafetySeal, t.Before = rec.Safety, seal, restore.JournalPlan(rec)
	if err := restore.Resume(ctx, t, rec, o); err != nil {
		return err
	}
	return printMetadataResult(dockerCli, opts, t)
}

// undoJournal puts back what the journal's restore replaced.
func undoJournal(ctx context.Context, dockerCli command.Cli, opts restoreOptions, same *targetOptions, replica *dtr.Replica, rec *journal.Record, o restore.Options, prog *progress.Printer) error {
	seal, err := safetySeal(dockerCli, rec, opts.dec, prog)
	if err != nil {
		return err
	}
	if rec.Kind == journal.KindImages {
		t := &restore.Images{Name: rec.Backup, Replica: replica, Docker: dockerCli.Client(), AgentBinary: same.agentBinary, Progress: prog, Stderr: dockerCli.Err()}
		if err := imagesTarget(ctx, dockerCli, t, rec); err != nil {
			return err
		}
		t.SafetySeal = seal
		t.Plan = restore.ImagePlan{Replica: replica.ID, Node: replica.Node, Volume: t.Volume.Name, VolumeEmpty: rec.VolumeEmpty, SafetyBackup: rec.Safety, Stop: []string{}}
		err = restore.Undo(ctx, t, rec, o)
	} else {
		t, done, terr := metadataTarget(ctx, dockerCli, opts, same, rec, prog)
		if terr != nil {
			return terr
		}
		defer done()
		t.Name, t.Plan, t.Safety, t.SafetySeal = rec.Backup, restore.JournalPlan(rec), rec.Safety, seal
		err = restore.Undo(ctx, t, rec, o)
	}
	if err != nil {
		return err
	}
	u := describeJournal(dockerCli, same, rec, "removed")
	if opts.format == "json" {
		return writeJSON(dockerCli, struct {
			Undone unfinished `json:"undone"`
		}{u})
	}
	msg := fmt.Sprintf("undid %s of %s into %s", restoreKind(rec.Kind), rec.Backup, rec.Where())
	if rec.Safety != "" {
		msg += ": put back from the safety backup " + rec.Safety
	} else {
		msg += ": removed what it added, as nothing was there before"
	}
	fmt.Fprintln(dockerCli.Out(), msg)
	return nil
}

// metadataTarget is the database a journal's metadata restore wrote, and
// the containers that use it: its backup and plan are the caller's.
func metadataTarget(ctx context.Context, dockerCli command.Cli, opts restoreOptions, same *targetOptions, rec *journal.Record, prog *progress.Printer) (*restore.Metadata, func(), error) {
	if rec.Kind != journal.KindMetadata {
		return nil, nil, fmt.Errorf("the journal records an %s restore, not a metadata restore", rec.Kind)
	}
	same.allowUnhealthy = true
	tgt, err := same.locate(ctx, dockerCli, prog)
	if err != nil {
		return nil, nil, err
	}
	if err := tgt.Connect(ctx, opts.writers+1); err != nil {
		tgt.Close()
		return nil, nil, err
	}
	t := &restore.Metadata{
		Where: tgt.Where(), DB: tgt, ReplicaID: rec.Replica,
		Writers: opts.writers, Progress: prog, Stderr: dockerCli.Err(),
	}
	if tgt.Replica != nil {
		t.Docker = dockerCli.Client()
		t.Containers = tgt.Replica.Running(func(c dtr.Container) bool { return c.Component != "rethinkdb" })
	}
	return t, tgt.Close, nil
}

// imagesTarget is the image volume, or bucket, a journal's image restore
// wrote (DTR's settings say which, as for the restore, unless it was given
// --to-volume); the agent that empties it must be able to run there.
func imagesTarget(ctx context.Context, dockerCli command.Cli, t *restore.Images, rec *journal.Record) error {
	if rec.Kind != journal.KindImages {
		return fmt.Errorf("the journal records a %s restore, not an image restore", rec.Kind)
	}
	vol, err := restore.ImageStore(ctx, t.Replica, storageReader(dockerCli, t.Replica, t.AgentBinary, t.Progress), rec.ToVolume, t.Progress)
	if err != nil {
		return err
	}
	vol.AgentBinary = t.AgentBinary
	t.Volume, t.ToVolume = vol, rec.ToVolume
	if !t.NoSafety {
		if err := vol.CheckAgent(ctx, dockerCli.Client(), t.AgentBinary); err != nil {
			return fmt.Errorf("refusing, nothing was changed: putting %s back if writing fails runs this plugin as an agent on node %s: %w", vol.Where(), t.Replica.Node, err)
		}
	}
	return nil
}

// safetySeal opens the journal's safety backup when it is encrypted, with
// the secrets given now, before anything is changed: what puts it back
// (--undo, or a --resume that fails) reads it without asking again. nil
// when there is none or it is in clear.
func safetySeal(dockerCli command.Cli, rec *journal.Record, dec decryptOptions, prog *progress.Printer) (*backupfile.Protection, error) {
	if rec.Safety == "" {
		return nil, nil
	}
	seal, err := backupfile.Unlock(rec.Safety, dec.openOptions(dockerCli, prog))
	if err != nil {
		return nil, fmt.Errorf("the safety backup %s of the unfinished restore: %w (give the secret the restore was given: --passphrase-file or --identity-file)", rec.Safety, err)
	}
	return seal, nil
}
