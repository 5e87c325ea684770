package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type restoreOptions struct {
	target               targetOptions
	file                 string
	dtrVersion           string
	allowVersionMismatch bool
	force                bool
	dryRun               bool
	safety               safetyOptions
	dec                  decryptOptions
	writers              int
	format               string
	progress             progressOptions
	// from is where an incremental image backup's earlier backups are.
	from string
	// resume and undo finish a restore that a journal records.
	resume, undo bool
	// toVolume writes an image backup into the volume whatever DTR's
	// storage settings say.
	toVolume bool
}

func newRestoreCmd(dockerCli command.Cli) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore [OPTIONS] FILE",
		Short: "Restore DTR's metadata from a backup, after verifying all of it",
		Long: `Restore DTR's metadata from a backup, after verifying all of it.

Nothing is changed before the whole backup has verified. On a terminal the
restore asks before it changes anything; --force (or --yes) does not ask.
Without a terminal, tables that already exist are replaced only with
--force. FILE may be "-" for standard input (it is spooled to a private
temporary file first). Backups written by 'docker/dtr backup' are restored
too.

Before it changes anything, the restore saves what it replaces in a safety
backup beside FILE (or in --safety-dir) and prints its path. The replica's
DTR containers that use the database are stopped while it loads and started
again whatever happens. If loading fails part way (an error, a lost
connection, Ctrl-C), the safety backup is put back; if that fails too, the
command that finishes the job by hand is printed. --dry-run shows the plan.

Before it stops anything, the restore records a journal on the replica's
node (the labels of a container that is never started; with
--rethinkdb-addr, a file in the configuration directory): the backup, the
safety backup, the containers it stops and what it replaces. It is removed
when the restore ends, either way. A restore that was killed leaves it:
'docker dtr status' then reports it (exit 1), backups and restores refuse
to go past it, and 'backup restore --resume' loads the backup again, or
'--undo' puts the safety backup back; both start the stopped containers.

Encrypted backups are decrypted as 'backup verify' decrypts them: as
they are read, anew for each pass (the check, the load, the key check of
a metadata backup; the check and the content written into the volume of
an image backup), with no plaintext on disk. A pass that reads other
content than the checked one fails the restore, which is then rolled back.
The safety backup of an encrypted backup is encrypted like it, so that it
protects DTR's keys as the backup does: for the same passphrase, or to the
public key of --identity-file's secret key (and named .tar.gpg). Restoring
it takes the same secret. --safety-encryption none writes it in clear
instead, mode 0600. The safety backup of an unencrypted backup is written
in clear, mode 0600.

` + compressedHelp + `
By default the target is the DTR behind the active Docker context, reached
through a helper container on the chosen replica's node (the healthy
replica with the lowest id, or --replica-id, which is used even when it is
not healthy, with a warning); --rethinkdb-addr and its TLS flags reach a
RethinkDB directly instead.

Image backups (docker dtr backup images) are restored into the replica's
image volume, or into the bucket where DTR's storage settings say s3
(--to-volume writes the volume whatever they say: moving DTR's images out
of a bucket, which its registry serves once its storage is set to
filesystem; the bucket is left as it is). After verifying, a volume
that is not empty is refused unless --force, and what it holds is saved
in a safety backup first; the containers that mount it are stopped, the
content is written through the Docker archive API, every file checked
against the backup's manifest as it goes, and a volume that held files
before is read back and checked file by file against it. If that fails, the volume is emptied (by this plugin's
own binary in a short-lived helper container; --agent-binary when it cannot
run on the node) and the safety backup written back; the containers are
started again whatever happens.

Exit status: 0 restored (or, with --dry-run, the plan shown); 1 the
restore was refused or failed, and the target is as it was (what was
loaded was rolled back); 2 wrong usage; 3 the restore failed and the
target could not be put back: it is partly restored, and the error gives
the command that finishes by hand; 130 interrupted (SIGINT, SIGTERM), and
the target put back as for 1 (3 when it could not be). An unattended job
should call a person on 3 rather than retry.`,
		Example: `  docker dtr backup restore --dry-run backup-metadata.tar
  docker dtr backup restore --force backup-metadata.tar
  docker dtr backup restore --dry-run backup-images.tar
  docker dtr backup restore --rethinkdb-addr 127.0.0.1:28015 --dtr-version 2.9.4 … backup-metadata.tar
  docker dtr backup restore --resume --replica-id 0123456789ab
  docker dtr backup restore --undo --replica-id 0123456789ab`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.undo && len(args) > 0:
				return usageError(cmd, fmt.Sprintf("%q --undo takes no FILE: it puts back the safety backup the journal names", cmd.CommandPath()))
			case opts.resume && len(args) <= 1, opts.undo:
				return nil
			}
			return exactArgs(1, "a backup FILE (or - for standard input), or --resume or --undo")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				opts.file = args[0]
			}
			return runRestore(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.dtrVersion, "dtr-version", "", "Version of the DTR being restored into (needed with --rethinkdb-addr; otherwise read from the replica)")
	flags.BoolVar(&opts.allowVersionMismatch, "allow-version-mismatch", false, "Restore a backup of another DTR major.minor version")
	flags.BoolVarP(&opts.force, "force", "f", false, "Do not ask; replace tables that already exist; for image backups, write into a volume that is not empty")
	flags.BoolVarP(&opts.force, "yes", "y", false, "Same as --force")
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Show what would be done, change nothing")
	opts.safety.addFlags(flags)
	opts.dec.addFlags(flags)
	flags.IntVar(&opts.writers, "writers", 4, "Concurrent insert queries")
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	opts.progress.addFlags(flags)
	flags.StringVar(&opts.from, "from", "", "With an incremental image backup: the directory of the earlier backups it depends on (default: FILE's directory)")
	flags.BoolVar(&opts.resume, "resume", false, "Finish the restore that a journal says was interrupted: load its backup again (FILE may be left out)")
	flags.BoolVar(&opts.undo, "undo", false, "Undo the restore that a journal says was interrupted: put its safety backup back")
	flags.BoolVar(&opts.toVolume, "to-volume", false, "With an image backup: write into the replica's image volume even where DTR's storage settings name a bucket (moving DTR's images to filesystem storage)")
	opts.target.addFlags(flags)
	return cmd
}

func runRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	if opts.writers < 1 || opts.writers > 64 {
		return exitcode.UsageError(fmt.Errorf("--writers %d: expected 1 to 64", opts.writers))
	}
	missing := "--dtr-version is required when connecting with --rethinkdb-addr: the version of the DTR being restored into (or --allow-version-mismatch)"
	if opts.allowVersionMismatch || opts.resume || opts.undo {
		// A journal's restore was checked when it began.
		missing = ""
	}
	if err := opts.target.checkDTRVersion(opts.dtrVersion, missing); err != nil {
		return err
	}
	if err := opts.target.validate(); err != nil {
		return err
	}
	if err := opts.safety.validate(); err != nil {
		return err
	}
	if opts.resume || opts.undo {
		return runJournalRestore(ctx, dockerCli, opts)
	}
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()
	// Before the backup is read: an unfinished restore is finished first.
	if err := refuseUnfinished(ctx, dockerCli, &opts.target, "", "restore, nothing was changed"); err != nil {
		return err
	}

	// An encrypted backup is restored as it is decrypted, each pass anew:
	// no plaintext reaches a file.
	in, name, images, err := openRestorable(dockerCli, opts.file, opts.dec, prog)
	if err != nil {
		return err
	}
	defer in.Close()
	if images {
		return runImageRestore(ctx, dockerCli, opts, in, name, prog)
	}
	if opts.toVolume {
		return exitcode.UsageError(fmt.Errorf("--to-volume: %s is a metadata backup; the flag is for image backups (docker dtr backup images)", name))
	}
	return runMetadataRestore(ctx, dockerCli, opts, in, name, prog)
}

// refused shows what is wrong with a backup that a restore refused, above
// the error.
func refused(dockerCli command.Cli, err error) error {
	var inv *restore.InvalidError
	switch {
	case !errors.As(err, &inv):
	case inv.Images != nil:
		printImageReport(dockerCli.Err(), inv.Name, inv.Images)
	default:
		printReport(dockerCli.Err(), inv.Name, inv.Metadata, "")
	}
	return err
}

// safetyLine is how a plan names the safety backup: its path and how it is
// protected.
func safetyLine(path, protection string) string {
	if protection == "" {
		return path
	}
	return path + ", " + protection
}

// engineOptions are how the restore engine reaches the person running it.
// byHand is the command that restores a safety backup into the same
// target.
func engineOptions(dockerCli command.Cli, opts restoreOptions, prog *progress.Printer, byHand func(string) string) restore.Options {
	return restore.Options{
		Force:    opts.force,
		Terminal: dockerCli.In().IsTerminal(),
		Confirm:  func(ctx context.Context, q string) error { return confirm(ctx, dockerCli, q) },
		Log:      prog.Step,
		Warn:     prog.Warn,
		ByHand:   byHand,
		Cleanup:  cleanupContext,
	}
}
