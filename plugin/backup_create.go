package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type createOptions struct {
	target       targetOptions
	dtrVersion   string
	output       string
	exclude      []string
	skipScanData bool
	skipEvents   bool
	progress     progressOptions
	format       string
	parallel     int
	enc          encryptOptions
	compress     compressOptions
	// allowOutdated backs up a cluster that lost its majority.
	allowOutdated bool
}

func newCreateCmd(dockerCli command.Cli) *cobra.Command {
	var opts createOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS]",
		Short: "Back up DTR's metadata (RethinkDB) to a tar archive",
		Long: `Back up DTR's metadata (RethinkDB) to a tar archive.

By default the DTR is the one behind the active Docker context (a UCP client
bundle, 'docker context use', or 'docker --context NAME'): the backup comes
from the healthy replica with the lowest id (or, where its RethinkDB server
cannot read every table up to date and another replica's server sees more
of the cluster, from that one), or the one --replica-id names, by a
short-lived helper container on that replica's node, which dumps
the database there and sends the archive compressed: DTR's client key
stays on the node. No UCP password, ssh or published port is needed. --rethinkdb-addr and its TLS
flags reach a RethinkDB directly instead.

` + outputHelp + `
` + encryptHelp + `
With --compress zstd, or an -o name ending in .zst or .tzst (.gpg after it
or not), the archive is a zstd stream, compressed before it is encrypted:
'zstd -dc FILE | tar -t' lists it, and DTR's own restore reads it through
'zstd -dc FILE | docker run -i ... restore'. verify, inspect, restore and
prune recognise it by its bytes. Plain tar stays the default, since that is
what DTR's own restore reads.

When DTR has lost its majority, tables that cannot be read up to date fail
the backup, naming them. --allow-outdated then backs up what the replica's
own RethinkDB server holds, with RethinkDB's outdated reads: the last writes
only the lost replicas took may be missing. The backup records which tables
were read that way; inspect and verify show it, and restore asks before it
restores one. It is the last chance to save what the surviving replica
holds before a repair or a restore (see docker dtr repair).

Exit status: 0 the backup was written; 1 it failed, and no file is left at
-o (on standard output the archive is incomplete); 2 wrong usage; 130
interrupted (SIGINT, SIGTERM), and no file is left at -o.`,
		Example: `  docker dtr backup create -o backup-metadata.tar
  docker dtr backup create -o backup-metadata.tar.zst
  docker dtr backup create --encrypt --passphrase-file /root/.dtr-backup-pass -o backup-metadata.tar.gpg
  docker dtr backup create --recipient-file backup-key.asc -o backup-metadata.tar.gpg
  docker --context other-cluster dtr backup create -o other-metadata.tar
  docker dtr backup create --rethinkdb-addr 127.0.0.1:28015 \
    --rethinkdb-ca ca.pem --rethinkdb-cert cert.pem --rethinkdb-key key.pem \
    --dtr-version 2.9.4 --replica-id 0123456789ab -o backup-metadata.tar`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&opts.output, "output", "o", "", `Write the archive to this file ("-" for standard output)`)
	flags.StringVar(&opts.dtrVersion, "dtr-version", "", "Version of the DTR being backed up, such as 2.9.4 (needed with --rethinkdb-addr; otherwise read from the replica)")
	flags.StringArrayVar(&opts.exclude, "exclude", nil, "Leave out a table, as db.table (repeatable)")
	flags.BoolVar(&opts.skipScanData, "skip-scan-data", false, "Leave out the vulnerability scan results (dtr2.scanned_images, dtr2.scanned_layers)")
	flags.BoolVar(&opts.skipEvents, "skip-events", false, "Leave out the event log (dtr2.events)")
	flags.BoolVar(&opts.allowOutdated, "allow-outdated", false, "Back up tables whose majority is lost from the replica's own copy (RethinkDB's outdated reads); the backup is marked outdated")
	flags.IntVar(&opts.parallel, "parallel", 0, "Tables read at once, each on its own connection; the archive keeps their order (default: the number of CPUs, at most 4)")
	opts.progress.addFlags(flags)
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	opts.enc.addFlags(flags)
	opts.compress.addFlags(flags)
	opts.target.addFlags(flags)
	return cmd
}

func runCreate(ctx context.Context, dockerCli command.Cli, opts createOptions) error {
	if err := checkOutput(dockerCli, opts.output); err != nil {
		return err
	}
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	if err := opts.target.checkDTRVersion(opts.dtrVersion, "--dtr-version is required when connecting with --rethinkdb-addr: the version of the DTR being backed up, such as 2.9.4"); err != nil {
		return err
	}
	switch {
	case opts.parallel < 0:
		return exitcode.UsageError(fmt.Errorf("--parallel %d: expected 1 or more tables at once", opts.parallel))
	case opts.parallel == 0: // the help's default, the same on every machine
		opts.parallel = metadata.DefaultParallel()
	}
	if err := opts.target.validate(); err != nil {
		return err
	}
	excluded, err := metadata.Exclusions(opts.exclude, opts.skipScanData, opts.skipEvents)
	if err != nil {
		return exitcode.UsageError(err)
	}
	compress, err := opts.compress.compress(opts.output)
	if err != nil {
		return err
	}
	out, err := openBackup(dockerCli, opts.output, &opts.enc, compress)
	if err != nil {
		return err
	}
	defer out.Abort()
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()
	out.reportSwept(prog)
	// A backup of tables a restore left half loaded would be kept as good.
	if err := refuseUnfinished(ctx, dockerCli, &opts.target, journal.KindMetadata, "back up"); err != nil {
		return backupError(ctx, opts.output, err)
	}
	tgt, err := opts.target.locate(ctx, dockerCli, prog)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	defer tgt.Close()
	dtrVersion, err := tgt.DTRVersion(opts.dtrVersion)
	if err != nil {
		return err
	}
	info := archive.Info{Tool: version.Tool(), DTRVersion: dtrVersion, ReplicaID: opts.target.replicaID, Started: time.Now()}
	if tgt.Replica != nil {
		info.ReplicaID = tgt.Replica.ID
	}
	backup := metadata.BackupOptions{Info: info, Exclude: excluded, Parallel: opts.parallel, AllowOutdated: opts.allowOutdated}
	m, err := tgt.Backup(ctx, out, backup)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	rows, bytes := m.Rows()
	prog.Set(rows, bytes) // the manifest's counts are the truth
	prog.Done()
	if err := out.Commit(); err != nil {
		return err
	}
	sum := createSummary{File: opts.output, Target: tgt.Where(), Rows: rows, Bytes: bytes, Encrypted: opts.enc.enabled(), Size: out.Size(), Manifest: m}
	compressed := ""
	if compress {
		sum.Compression = "zstd"
		compressed = ", compressed (zstd) to " + human.Bytes(out.Size())
	}
	outdated := ""
	if o := m.Outdated; o != nil {
		outdated = fmt.Sprintf("; OUTDATED: %s read from RethinkDB server %s without their majority", human.Plural(len(o.Tables), "table"), o.Server)
	}
	return out.result(dockerCli, prog, opts.format, sum,
		fmt.Sprintf("%s: DTR %s, %s, %d tables, %d rows, %s of documents%s%s%s",
			displayOutput(opts.output), m.DTRVersion, tgt.Where(), len(m.Tables), rows, human.Bytes(bytes), compressed, opts.enc.describe(), outdated))
}

func displayOutput(name string) string {
	if name == "-" {
		return "standard output"
	}
	return name
}

// backupError says that no backup was written, and why.
func backupError(ctx context.Context, output string, err error) error {
	if ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	if output == "-" {
		return fmt.Errorf("backup failed, the archive on standard output is incomplete: %w", err)
	}
	return fmt.Errorf("backup failed, %s was not written: %w", output, err)
}
