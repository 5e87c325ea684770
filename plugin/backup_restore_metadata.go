package plugin

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker/cli/cli/command"
)

// runMetadataRestore verifies a metadata backup, plans its restore into
// the target, and shows the plan (--dry-run) or has the engine run it.
func runMetadataRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions, in *backupfile.Input, name string, prog *progress.Printer) error {
	// Verify everything before touching anything: an encrypted backup as
	// it is decrypted, in the first of its passes. Meanwhile the DTR is
	// found and the database helper started: that changes nothing (its
	// agent does not even connect before the first request), and what it
	// says waits until the verify has said its own. A backup that does not
	// verify leaves no helper. A replica named by --replica-id may be
	// unhealthy: its database may be what is being repaired.
	opts.target.allowUnhealthy = true
	held, release := prog.Held()
	found := make(chan locatedTarget, 1)
	go func() { found <- locateAndConnect(ctx, dockerCli, &opts.target, opts.writers+1, held) }()
	rep, err := restore.VerifyMetadata(in, name, prog)
	loc := <-found
	if loc.tgt != nil {
		defer loc.tgt.Close()
	}
	if err != nil {
		return refused(dockerCli, err)
	}
	release()
	if loc.err != nil {
		return loc.err
	}
	tgt := loc.tgt
	tgt.SetProgress(prog)
	sum, err := in.SHA256()
	if err != nil {
		return err
	}
	targetVersion, err := tgt.DTRVersion(opts.dtrVersion)
	if err != nil {
		return err
	}
	if err := restore.CheckVersion(name, rep.DTRVersion, targetVersion, opts.allowVersionMismatch, prog.Warn); err != nil {
		return err
	}
	// The way back in for a command run by hand: the replica this restore
	// chose, whether or not --replica-id named it.
	same := opts.target
	if tgt.Replica != nil {
		same.replicaID = tgt.Replica.ID
	}
	t := &restore.Metadata{
		Name: name, Backup: in, Report: rep, Where: tgt.Where(), DB: tgt,
		Version: targetVersion, ReplicaID: same.replicaID,
		Writers: opts.writers, Progress: prog, Stderr: dockerCli.Err(),
		SafetySeal: opts.safety.seal(in),
	}
	if tgt.Replica != nil {
		// The database is the replica's rethinkdb; everything else uses it.
		t.Docker = dockerCli.Client()
		t.Containers = tgt.Replica.Running(func(c dtr.Container) bool { return c.Component != "rethinkdb" })
	}
	if err := restore.PlanMetadata(ctx, t, opts.safety.dir, opts.file, opts.safety.skip); err != nil {
		return err
	}
	opts.safety.warnClear(in, name, t.Safety, prog)
	if opts.dryRun {
		return printMetadataPlan(dockerCli, opts, t)
	}
	byHand := func(safety string) string { return byHand(dockerCli, &same, opts.dec, targetVersion, safety) }
	o := engineOptions(dockerCli, opts, prog, byHand)
	if err := journalOptionsSum(dockerCli, &o, &same, opts.dec, tgt.Replica, opts.file, sum, prog); err != nil {
		return err
	}
	if err := restore.Run(ctx, t, o); err != nil {
		return pendingError(dockerCli, &same, err)
	}
	return printMetadataResult(dockerCli, opts, t)
}

// locatedTarget is the database a restore writes into, found and
// connected while its backup verifies.
type locatedTarget struct {
	tgt *dtrdb.Target
	err error
}

func locateAndConnect(ctx context.Context, dockerCli command.Cli, o *targetOptions, connections int, prog *progress.Printer) locatedTarget {
	tgt, err := o.locate(ctx, dockerCli, prog)
	if err != nil {
		return locatedTarget{err: err}
	}
	if err := tgt.Connect(ctx, connections); err != nil {
		tgt.Close()
		return locatedTarget{err: err}
	}
	return locatedTarget{tgt: tgt}
}

// printMetadataResult shows the tables a restore loaded.
func printMetadataResult(dockerCli command.Cli, opts restoreOptions, t *restore.Metadata) error {
	name := t.Name
	if opts.format == "json" {
		return writeJSON(dockerCli, t.Results)
	}
	var rows int64
	tw := tabwriter.NewWriter(dockerCli.Out(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	for _, res := range t.Results {
		rows += res.Rows
		fmt.Fprintf(tw, "%s\t%d\n", res.Table, res.Rows)
	}
	tw.Flush()
	fmt.Fprintf(dockerCli.Out(), "restored %s into %s: %d tables, %d rows, row counts and primary keys checked\n", name, t.Where, len(t.Results), rows)
	return nil
}

// metadataPlan is --dry-run --format json.
type metadataPlan struct {
	*metadata.Plan
	Stop         []string `json:"stop"`
	Bytes        int64    `json:"bytes"`
	SafetyBackup string   `json:"safetyBackup,omitempty"`
	// SafetyProtection says how the safety backup is protected.
	SafetyProtection string `json:"safetyProtection,omitempty"`
	// StorageDiffers says how the backup's image storage differs from
	// the target's (it needs --force).
	StorageDiffers string `json:"storageDiffers,omitempty"`
}

func printMetadataPlan(dockerCli command.Cli, opts restoreOptions, t *restore.Metadata) error {
	stop := containerNames(t.Containers)
	if opts.format == "json" {
		return writeJSON(dockerCli, metadataPlan{Plan: t.Plan, Stop: stop, Bytes: t.Report.Bytes, SafetyBackup: t.Safety, SafetyProtection: restore.SafetyProtection(t), StorageDiffers: t.StorageDiffers})
	}
	out, replaced := dockerCli.Out(), t.Plan.Replaced()
	fmt.Fprintf(out, "Dry run: restoring %s into %s would:\n", t.Name, t.Where)
	if o := t.Report.Outdated; o != nil {
		fmt.Fprintf(out, "restore an OUTDATED backup: %s\n", restore.OutdatedLine(o))
		if !opts.force && !dockerCli.In().IsTerminal() {
			fmt.Fprintln(out, "refuse without --force: the backup is outdated")
		}
	}
	switch {
	case t.Safety != "":
		fmt.Fprintf(out, "save the %s it replaces to %s\n", human.Plural(len(replaced), "table"), safetyLine(t.Safety, restore.SafetyProtection(t)))
	case len(replaced) > 0:
		fmt.Fprintf(out, "replace %s without a safety backup (--no-safety-backup)\n", human.Plural(len(replaced), "table"))
	}
	if t.Docker != nil {
		fmt.Fprintf(out, "stop %s\n", orNone(stop))
	}
	t.Plan.Print(out)
	fmt.Fprintf(out, "write %d rows, %s of documents\n", t.Report.Rows, human.Bytes(t.Report.Bytes))
	if t.Docker != nil {
		fmt.Fprintf(out, "start %s again\n", orNone(stop))
	}
	if len(replaced) > 0 && !opts.force && !dockerCli.In().IsTerminal() {
		fmt.Fprintf(out, "refuse without --force: %s already exist\n", human.Plural(len(replaced), "table"))
	}
	if t.StorageDiffers != "" {
		fmt.Fprintf(out, "point the registry at the backup's image storage: %s\n", t.StorageDiffers)
		if !opts.force {
			fmt.Fprintf(out, "refuse without --force: DTR's guidance is never to change storage between a backup and its restore\n")
		}
	}
	return nil
}

func containerNames(cs []dtr.Container) []string {
	names := []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}
