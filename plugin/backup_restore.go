package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
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
	writers              int
	format               string
	quiet                bool
}

func newRestoreCmd(dockerCli command.Cli) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore [OPTIONS] FILE",
		Short: "Restore DTR's metadata from a backup, after verifying all of it",
		Long: `Restore DTR's metadata from a backup, after verifying all of it.

Nothing is changed before the whole backup has verified. Tables that
already exist are refused unless --force, which drops and recreates them.
FILE may be "-" for standard input (it is spooled to a private temporary
file first). Backups written by 'docker/dtr backup' are restored too.

By default the target is the DTR behind the active Docker context, reached
through a helper container on the chosen replica's node (the healthy
replica with the lowest id, or --replica-id); --rethinkdb-addr and its TLS
flags reach a RethinkDB directly instead.

Image backups (docker dtr backup images) are restored into the replica's
image volume: after verifying, a volume that is not empty is refused unless
--force; the containers that mount it are stopped, the content is written
through the Docker archive API, they are started again whatever happens,
and the volume is checked file by file against the backup's manifest.`,
		Example: `  docker dtr backup restore --dry-run backup-metadata.tar
  docker dtr backup restore --force backup-metadata.tar
  docker dtr backup restore --dry-run backup-images.tar
  docker dtr backup restore --rethinkdb-addr 127.0.0.1:28015 --dtr-version 2.9.4 … backup-metadata.tar`,
		Args: exactArgs(1, "a backup FILE (or - for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runRestore(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&opts.dtrVersion, "dtr-version", "", "Version of the DTR being restored into (needed with --rethinkdb-addr; otherwise read from the replica)")
	flags.BoolVar(&opts.allowVersionMismatch, "allow-version-mismatch", false, "Restore a backup of another DTR major.minor version")
	flags.BoolVarP(&opts.force, "force", "f", false, "Drop and replace tables that already exist; for image backups, write into a volume that is not empty")
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Show what would be done, change nothing")
	flags.IntVar(&opts.writers, "writers", 4, "Concurrent insert queries")
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "Print no progress")
	opts.target.addFlags(flags)
	return cmd
}

func runRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	if opts.writers < 1 || opts.writers > 64 {
		return fmt.Errorf("--writers %d: expected 1 to 64", opts.writers)
	}
	if opts.dtrVersion == "" && !opts.allowVersionMismatch && opts.target.isDirect() {
		return errors.New("--dtr-version is required when connecting with --rethinkdb-addr: the version of the DTR being restored into (or --allow-version-mismatch)")
	}
	if opts.dtrVersion != "" && !archive.ValidVersion(opts.dtrVersion) {
		return fmt.Errorf("--dtr-version %q: expected a version such as 2.9.4", opts.dtrVersion)
	}
	if err := opts.target.validate(); err != nil {
		return err
	}
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := progress.New(dockerCli.Err(), opts.quiet)

	f, done, err := openArchive(dockerCli, opts.file)
	if err != nil {
		return err
	}
	defer done()
	name := displayName(opts.file)
	if images, err := imagearchive.IsImageArchive(f); err != nil {
		return err
	} else if images {
		return runImageRestore(ctx, dockerCli, opts, f, name, prog)
	}

	// Verify everything before touching anything.
	prog.Step("verifying %s", name)
	rep, err := archive.Verify(f)
	if err != nil {
		return err
	}
	if !rep.OK() {
		printReport(dockerCli.Err(), name, rep, "")
		return fmt.Errorf("refusing to restore %s: it did not verify (%s, listed above); nothing was changed", name, plural(len(rep.Problems)+rep.ProblemsOmitted, "problem"))
	}
	if rep.Kind == archive.KindOfficial {
		prog.Warn("%s was written by docker/dtr backup: it has no manifest, so only its structure and documents were checked", name)
	}
	// Finding the DTR changes nothing; the tunnel comes after the checks.
	tgt, err := opts.target.locate(ctx, dockerCli, prog)
	if err != nil {
		return err
	}
	defer closeTarget(tgt, prog)
	targetVersion, err := tgt.dtrVersion(opts.dtrVersion)
	if err != nil {
		return err
	}
	if targetVersion != "" && archive.MajorMinor(targetVersion) != archive.MajorMinor(rep.DTRVersion) {
		if !opts.allowVersionMismatch {
			return fmt.Errorf("%s is a backup of DTR %s, the target is DTR %s: restore into the same major.minor version, or pass --allow-version-mismatch", name, rep.DTRVersion, targetVersion)
		}
		prog.Warn("restoring a backup of DTR %s into DTR %s (--allow-version-mismatch)", rep.DTRVersion, targetVersion)
	}

	if err := tgt.connect(ctx, dockerCli, prog, opts.writers+1); err != nil {
		return err
	}
	sess := tgt.sess
	plan, err := metadata.MakePlan(ctx, sess, rep)
	if err != nil {
		return tgt.explain(err)
	}
	if opts.dryRun {
		if opts.format == "json" {
			return writeJSON(dockerCli, plan)
		}
		fmt.Fprintf(dockerCli.Out(), "Dry run: restoring %s into %s would:\n", name, tgt.where())
		plan.Print(dockerCli.Out())
		return nil
	}
	for _, w := range plan.Warnings {
		prog.Warn("%s", w)
	}
	results, err := metadata.Restore(ctx, sess, f, rep, plan, metadata.RestoreOptions{
		Force: opts.force, Writers: opts.writers, Progress: prog,
	})
	if err != nil {
		err = tgt.explain(err)
		if ctx.Err() != nil {
			// keep the cause: it says whether the target is partly restored
			err = fmt.Errorf("interrupted: %w", err)
		}
		return fmt.Errorf("restore of %s failed: %w", name, err)
	}
	if opts.format == "json" {
		return writeJSON(dockerCli, results)
	}
	var rows int64
	tw := tabwriter.NewWriter(dockerCli.Out(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS")
	for _, r := range results {
		rows += r.Rows
		fmt.Fprintf(tw, "%s\t%d\n", r.Table, r.Rows)
	}
	tw.Flush()
	fmt.Fprintf(dockerCli.Out(), "restored %s into %s: %d tables, %d rows, row counts checked\n", name, tgt.where(), len(results), rows)
	return nil
}

func writeJSON(dockerCli command.Cli, v any) error {
	enc := json.NewEncoder(dockerCli.Out())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
