package plugin

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/passphrase"
	"github.com/docker-dtr/docker-dtr/pkg/prune"
	"github.com/docker-dtr/docker-dtr/pkg/retention"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type pruneOptions struct {
	dir      string
	policy   retention.Policy
	dryRun   bool
	format   string
	dec      decryptOptions
	progress progressOptions
}

func newPruneCmd(dockerCli command.Cli) *cobra.Command {
	var opts pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS] DIR",
		Short: "Remove old backups from a directory of backups, by a keep policy",
		Long: `Remove old backups from a directory of backups, by a keep policy.

Metadata backups and image backups are two series, each ordered by the time
its manifest says it was started, newest first. The policy is restic's
'forget': --keep-last N keeps the N newest; --keep-daily N keeps the newest
backup of each of the N newest days that have one, --keep-weekly N the same
per ISO week (Monday to Sunday). Days and weeks are counted in local time
($TZ). A backup may be kept by several rules; the output names them all.
When a daily or weekly rule finds fewer days or weeks than it may keep, the
oldest backup is kept too.

Whatever the policy says, prune never removes:
  - the newest backup of each series that passes 'backup verify' (the whole
    file is read, and an incremental image backup's chain checked; when no
    backup of a series passes, none of that series is removed);
  - an image backup that an incremental image backup in DIR depends on
    (by manifest hash, whatever the file is called now), even one this run
    removes: a base goes in the run after the last backup that needs it;
  - a file whose manifest it cannot read: other files, foreign tars,
    'docker/dtr backup' archives (they have no docker-dtr manifest),
    truncated backups, hidden files (such as the temporary file of a backup
    being written) and encrypted backups it cannot decrypt. These are listed
    as SKIP, with the reason.

The temporary file of a backup that was killed (.NAME.tmp-NNN, which no
running backup holds locked) is removed whatever the policy.

Encrypted backups are read as they are decrypted, never into a file, for
their manifest (and again to verify the newest), with --passphrase-file,
$DTR_BACKUP_PASSPHRASE or --identity-file; without any of them they are
skipped rather than prompted for, file after file. Because an encrypted
file that cannot be read may be an incremental image backup, no image backup
is removed while one is in DIR.

` + compressedHelp + `
Files are removed only once every decision is made, and only if they have
not changed since; --dry-run removes nothing and prints the same table.

Exit status: 0 done (also when nothing was removed); 1 a file could not be
removed (the others still are), or DIR cannot be read; 2 wrong usage.`,
		Example: `  docker dtr backup prune /backups --keep-daily 7 --keep-weekly 5 --dry-run
  docker dtr backup prune /backups --keep-last 3 --keep-daily 7 -q
  docker dtr backup prune /backups --keep-weekly 8 --identity-file /root/backup-key.asc --format json`,
		Args: exactArgs(1, "a directory DIR of backups"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			if err := opts.policy.Validate(); err != nil {
				return usageError(cmd, err.Error())
			}
			return runPrune(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.IntVar(&opts.policy.Last, "keep-last", 0, "Keep the N newest backups of each series")
	flags.IntVar(&opts.policy.Daily, "keep-daily", 0, "Keep the newest backup of each of the last N days that have one")
	flags.IntVar(&opts.policy.Weekly, "keep-weekly", 0, "Keep the newest backup of each of the last N ISO weeks that have one")
	flags.BoolVar(&opts.dryRun, "dry-run", false, "Print what would be removed; remove nothing")
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for a table`)
	opts.dec.addFlags(flags)
	opts.progress.addFlags(flags)
	return cmd
}

func runPrune(ctx context.Context, dockerCli command.Cli, opts pruneOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()
	plan, err := prune.MakePlan(prune.Options{
		Dir: opts.dir, Policy: opts.policy, Progress: prog,
		Open: func(path string) (*backupfile.Input, error) {
			return backupfile.Open(path, opts.dec.openOptions(dockerCli, prog))
		},
		CanDecrypt: passphrase.Available(opts.dec.passphraseFile) || opts.dec.identityFile != "",
		NoSecret:   "encrypted: give --passphrase-file, --identity-file or $" + passphraseEnv + " to read its manifest",
	})
	if err != nil {
		return err
	}
	failed := 0
	if !opts.dryRun {
		failed = plan.Execute(prog)
	}
	if err := printPrune(dockerCli.Out(), opts, plan.Entries); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s in %s could not be removed (listed above)", human.Plural(failed, "backup"), opts.dir)
	}
	return nil
}

// printPrune writes the table, or JSON: each series newest first, then
// the skipped files.
func printPrune(w io.Writer, opts pruneOptions, entries []*prune.Entry) error {
	sorted := append([]*prune.Entry(nil), entries...)
	rank := map[string]int{prune.Metadata: 0, prune.Images: 1, "": 2}
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.Started != nil && b.Started != nil && !a.Started.Equal(*b.Started) {
			return a.Started.After(*b.Started)
		}
		return a.File < b.File
	})
	removed, failed, wouldRemove, freed := 0, 0, 0, int64(0)
	removedTemp, wouldRemoveTemp := 0, 0
	for _, e := range sorted {
		if e.Action == prune.Remove && e.Temporary {
			wouldRemoveTemp++
			if e.Removed {
				removedTemp++
			}
		}
		if e.Action == prune.Remove && !e.Temporary {
			wouldRemove++
			if e.Removed || opts.dryRun {
				freed += e.Size
			}
		}
		if e.Removed && !e.Temporary {
			removed++
		}
		if e.Error != "" {
			failed++
		}
	}
	if strings.EqualFold(opts.format, "json") {
		return encodeJSON(w, struct {
			Dir     string           `json:"dir"`
			DryRun  bool             `json:"dryRun"`
			Policy  retention.Policy `json:"policy"`
			Files   []*prune.Entry   `json:"files"`
			Removed int              `json:"removed"`
			Failed  int              `json:"failed"`
			Freed   int64            `json:"freedBytes"`
		}{opts.dir, opts.dryRun, opts.policy, sorted, removed, failed, freed})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tFILE\tKIND\tSTARTED\tREASON")
	for _, e := range sorted {
		started := "-"
		if e.Started != nil {
			started = e.Started.In(time.Local).Format("2006-01-02 15:04:05 MST")
		}
		kind := e.Kind
		switch {
		case kind == "":
			kind = "-"
		case e.Encrypted:
			kind += ", encrypted"
		}
		why := e.Reason
		if e.Action == prune.Keep {
			why = strings.Join(e.Rules, "; ")
		}
		if e.Error != "" {
			why += "; NOT REMOVED: " + e.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(e.Action), e.File, kind, started, oneLine(why))
	}
	tw.Flush()
	temps := func(n int) string {
		switch n {
		case 0:
			return ""
		case 1:
			return " and 1 temporary file of a killed backup"
		}
		return fmt.Sprintf(" and %d temporary files of killed backups", n)
	}
	if opts.dryRun {
		fmt.Fprintf(w, "\ndry run: %s%s would be removed (%s); nothing was removed\n", human.Plural(wouldRemove, "backup"), temps(wouldRemoveTemp), human.Bytes(freed))
	} else {
		fmt.Fprintf(w, "\nremoved %s%s (%s)\n", human.Plural(removed, "backup"), temps(removedTemp), human.Bytes(freed))
	}
	return nil
}

// oneLine keeps a table row on one line whatever a reason holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
