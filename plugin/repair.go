package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/repair"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type repairOptions struct {
	target     targetOptions
	dryRun     bool
	force      bool
	output     string
	safetyDir  string
	noSafety   bool
	replicas   int
	dtrVersion string
	enc        encryptOptions
	progress   progressOptions
	format     string
}

func newRepairCmd(dockerCli command.Cli) *cobra.Command {
	var opts repairOptions
	cmd := &cobra.Command{
		Use:   "repair [OPTIONS]",
		Short: "Revert a DTR that lost its majority to the surviving replica (emergency repair)",
		Long: `Revert a DTR whose RethinkDB has lost its majority to the replica that
survives, without a backup: what docker/dtr emergency-repair does. Every
table of DTR's databases that cannot take writes is reverted to the
replicas the surviving server reaches (RethinkDB's reconfigure with
emergency_repair "unsafe_rollback"), and every table then keeps only
those replicas: the lost replicas are no longer part of the database, and
status counts them out. Writes that only the lost replicas took, and the
survivor never saw, are lost.

The surviving replica is the one whose RethinkDB server sees the most of
the others, where the most tables take writes, on DTR's network; or the
one --replica-id names. repair refuses when the database has its
majority (every table takes writes where the replica that sees most is),
even when --replica-id names a server cut off from that majority: a repair
from it would revert the tables to its stale copy.

--dry-run prints, for each table, the replicas that are unreachable, the
replica that stays, and what changes; nothing is changed. Otherwise repair
asks for confirmation (--force skips it), then backs up the survivor first
(an outdated backup, as backup create --allow-outdated: to -o, or
dtr-repair-safety-<replica>-<time>.tar in --safety-dir or the current
directory; --no-safety-backup skips it), records the repair in the replica's journal,
repairs, waits until every table takes writes, and shows the new status.
A repair killed halfway is reported by status and finished by the next
repair.

--replicas N gives every table N replicas, once new replicas have joined
(the step docker/dtr join otherwise does); it can follow a repair or run
alone.

When to repair rather than restore: repair keeps everything the survivor
holds (minutes, may lose the lost replicas' last writes); a restore loses
everything since the backup. See the runbook (docs/disaster-recovery.md).

Exit status: 0 repaired (or, with --dry-run, planned) and status healthy;
1 refused (nothing to repair, no survivor, a restore unfinished) or
failed; 2 wrong usage; 130 interrupted.`,
		Example: `  docker dtr status
  docker dtr repair --dry-run
  docker dtr repair -o /backups/survivor-metadata.tar
  docker dtr repair --replicas 3`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRepair(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Print what the repair would change, and change nothing")
	flags.BoolVarP(&opts.force, "force", "f", false, "Do not ask for confirmation")
	flags.StringVarP(&opts.output, "output", "o", "", "Write the survivor's safety backup to this file (default: dtr-repair-safety-<replica>-<time>.tar here)")
	flags.StringVar(&opts.safetyDir, "safety-dir", "", "Write the safety backup, under its default name, into this directory")
	flags.BoolVar(&opts.noSafety, "no-safety-backup", false, "Repair without backing up the survivor first")
	flags.StringVar(&opts.dtrVersion, "dtr-version", "", "Version of the DTR, such as 2.9.4, for the safety backup (needed with --rethinkdb-addr; otherwise read from the replica)")
	flags.IntVar(&opts.replicas, "replicas", 0, "Give every table this many replicas (once new replicas have joined)")
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for text`)
	opts.enc.addFlags(flags)
	opts.progress.addFlags(flags)
	opts.target.addFlags(flags)
	flags.Lookup("replica-id").Usage = "Surviving replica to repair from (default: the one whose RethinkDB server sees most of the others)"
	return cmd
}

func runRepair(ctx context.Context, dockerCli command.Cli, opts repairOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	switch {
	case opts.replicas < 0:
		return exitcode.UsageError(fmt.Errorf("--replicas %d: expected 1 or more", opts.replicas))
	case opts.noSafety && (opts.output != "" || opts.safetyDir != ""):
		return exitcode.UsageError(errors.New("-o and --safety-dir place the safety backup, which --no-safety-backup leaves out: give one or the other"))
	case opts.output != "" && opts.safetyDir != "":
		return exitcode.UsageError(errors.New("-o names the safety backup's file, --safety-dir its directory: give one or the other"))
	case opts.output == "-":
		return exitcode.UsageError(errors.New("-o -: the safety backup is a file, kept until the repair is known good"))
	}
	if err := opts.target.validate(); err != nil {
		return err
	}
	missing := "--dtr-version is required with --rethinkdb-addr for the safety backup: the version of the DTR, such as 2.9.4 (or --no-safety-backup)"
	if opts.noSafety || opts.dryRun {
		missing = ""
	}
	if err := opts.target.checkDTRVersion(opts.dtrVersion, missing); err != nil {
		return err
	}
	if err := opts.enc.validate(); err != nil {
		return err
	}
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()

	opts.target.allowUnhealthy = true
	if !opts.target.isDirect() {
		id, err := survivor(ctx, dockerCli, opts.target.replicaID, opts.replicas > 0, prog)
		if err != nil {
			return err
		}
		opts.target.replicaID = id
	}
	tgt, err := opts.target.locate(ctx, dockerCli, prog)
	if err != nil {
		return err
	}
	defer tgt.Close()
	if err := tgt.Connect(ctx, 2); err != nil {
		return err
	}
	store, err := journalStore(dockerCli, &opts.target, tgt.Replica)
	if err != nil {
		return err
	}
	o := repair.Options{DryRun: opts.dryRun, Replicas: opts.replicas, Journal: store, Progress: prog,
		Record: journal.Record{Owner: helpercontainer.Self()}}
	if tgt.Replica != nil {
		o.Record.Replica, o.Record.Node = tgt.Replica.ID, tgt.Replica.Node
	}
	if !opts.force {
		o.Confirm = func(p *repair.Plan, resuming bool) error {
			if !dockerCli.In().IsTerminal() {
				return errors.New("refusing to repair without --force: there is no terminal to ask (--dry-run shows what would change)")
			}
			q := fmt.Sprintf("Revert %s of DTR's tables to RethinkDB server %s, losing the writes only the lost replicas took", human.Plural(len(p.Changes()), "table"), p.Server)
			if resuming {
				q = "Finish the interrupted repair from RethinkDB server " + p.Server
			}
			return confirm(ctx, dockerCli, q+"?")
		}
	}
	if !opts.noSafety {
		o.Safety = func(ctx context.Context) (string, string, error) {
			return repairSafety(ctx, dockerCli, opts, tgt, prog)
		}
	}
	res, err := repair.Run(ctx, tgt, o)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	prog.Close()
	if opts.format == "json" {
		return writeJSON(dockerCli, res)
	}
	out := dockerCli.Out()
	if res.DryRun {
		printRepairPlan(out, res.Plan, opts)
		return nil
	}
	verb := "repaired"
	if res.Resumed {
		verb = "finished the interrupted repair:"
	}
	fmt.Fprintf(out, "%s %s from RethinkDB server %s (%s) in %s", verb, human.Plural(len(res.Changed), "table"), res.Plan.Server, tgt.Where(), res.Took.Round(100*time.Millisecond))
	if len(res.Rescaled) > 0 {
		fmt.Fprintf(out, "; %s given %d replicas", human.Plural(len(res.Rescaled), "table"), res.Replicas)
	}
	fmt.Fprintln(out)
	if res.Safety != "" {
		fmt.Fprintf(out, "safety backup of the survivor: %s (restore it with docker dtr backup restore if the repair lost what you need)\n", res.Safety)
	}
	fmt.Fprintln(out)
	if tgt.Replica == nil {
		return nil
	}
	tgt.Close() // status starts helpers of its own
	return runStatus(ctx, dockerCli, statusOptions{})
}

// printRepairPlan is --dry-run's table: what each table has, and what
// the repair would do.
func printRepairPlan(w io.Writer, p *repair.Plan, opts repairOptions) {
	fmt.Fprintf(w, "Dry run: a repair from RethinkDB server %s (it reaches %s) would:\n", p.Server, strings.Join(p.Connected, ", "))
	lost := p.Lost()
	switch {
	case len(lost) > 0 && !opts.noSafety:
		fmt.Fprintln(w, "back up the survivor first (an outdated backup)")
	case len(lost) > 0:
		fmt.Fprintln(w, "change the tables without a safety backup (--no-safety-backup)")
	}
	if len(lost) > 0 {
		fmt.Fprintf(w, "revert %s to the survivor's replicas: writes only the unreachable replicas took are LOST\n", human.Plural(len(lost), "table"))
	}
	if opts.replicas > 0 {
		fmt.Fprintf(w, "give every table %d replicas\n", opts.replicas)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tTAKES WRITES\tUNREACHABLE\tSTAYS\tCHANGE")
	for _, t := range p.Tables {
		writes := "yes"
		if !t.ReadyForWrites {
			writes = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t, writes, dash(strings.Join(t.Unreachable, ", ")), dash(strings.Join(t.Stays, ", ")), t.Action)
	}
	tw.Flush()
	switch {
	case len(lost) == 0 && len(p.Electing()) > 0:
		fmt.Fprintln(w, "\nnothing to repair: every table has a majority of its replicas, and those electing a primary will take writes within seconds")
	case len(lost) == 0:
		fmt.Fprintln(w, "\nnothing to repair: every table takes writes")
	}
}

// repairSafety backs up the survivor (outdated reads where the majority
// is lost) before the repair changes anything, and says where.
func repairSafety(ctx context.Context, dockerCli command.Cli, opts repairOptions, tgt *dtrdb.Target, prog *progress.Printer) (string, string, error) {
	path := opts.output
	id := opts.target.replicaID
	if path == "" {
		if id == "" {
			id = "direct"
		}
		path = filepath.Join(opts.safetyDir, fmt.Sprintf("dtr-repair-safety-%s-%s.tar", id, time.Now().UTC().Format("20060102T150405Z")))
		if opts.enc.enabled() {
			path += ".gpg"
		}
	}
	out, err := openBackup(dockerCli, path, &opts.enc, false)
	if err != nil {
		return "", "", err
	}
	defer out.Abort()
	ver, err := tgt.DTRVersion(opts.dtrVersion)
	if err != nil {
		return "", "", err
	}
	info := archive.Info{Tool: version.Tool(), DTRVersion: ver, ReplicaID: id, Started: time.Now()}
	m, err := tgt.Dump(ctx, out, metadata.BackupOptions{Info: info, Parallel: 2, AllowOutdated: true}, "backing up the survivor")
	if err != nil {
		return "", "", err
	}
	if err := out.Commit(); err != nil {
		return "", "", err
	}
	rows, _ := m.Rows()
	prog.Step("safety backup of the survivor: %s (%d tables, %d rows)", path, len(m.Tables), rows)
	sum, err := journal.FileSHA256(path)
	return path, sum, err
}

// survivor is the replica a repair works from: the one an unfinished
// repair's journal names, else the one named (id) or the replica whose
// server has the widest view (dbhealth.Survey asks them all when the first
// sees no majority). Where that widest view reaches a majority of every
// DTR table's replicas, the database has its majority and nothing needs
// repair, whatever a server cut off from it says: a repair from that
// server would revert the tables to its stale replicas. That holds while
// tables whose primary was cut off still elect a new one and take no
// writes for a few seconds. Unless rescale (--replicas), it is refused.
func survivor(ctx context.Context, dockerCli command.Cli, id string, rescale bool, prog *progress.Printer) (string, error) {
	found, err := nodejournal.List(ctx, dockerCli.Client())
	if err != nil {
		return "", err
	}
	for _, f := range found {
		if f.Record.Kind != journal.KindRepair {
			continue
		}
		if id != "" && id != f.Record.Replica {
			return "", fmt.Errorf("--replica-id %s, but the repair from replica %s is unfinished (journal: container %s): finish it with --replica-id %s", id, f.Record.Replica, f.Container, f.Record.Replica)
		}
		prog.Step("finishing the unfinished repair from replica %s (journal: container %s)", f.Record.Replica, f.Container)
		return f.Record.Replica, nil
	}
	cluster, err := dtrdb.Discover(ctx, dockerCli)
	if err != nil {
		return "", err
	}
	health, from, _, err := dtrdb.Survey(ctx, dockerCli, nil, cluster.Replicas, "")
	switch {
	case err != nil && id == "":
		return "", fmt.Errorf("no replica's RethinkDB could be asked: %w", err)
	case err != nil:
		prog.Warn("no replica's RethinkDB could be asked (%v): repairing from replica %s as --replica-id asks", oneLine(err.Error()), id)
		return id, nil
	}
	if nothing := repair.NothingToRepair(repair.MakePlan(health)); nothing != nil && !rescale {
		return "", nothing
	}
	if id != "" {
		return id, nil
	}
	prog.Step("surviving replica: %s (its server %s sees %d of %d replicas' servers; %d of %d tables take writes there)",
		from.ID, health.Server, health.Sees(cluster.Replicas), len(cluster.Replicas), health.Writable(), len(health.Tables))
	return from.ID, nil
}
