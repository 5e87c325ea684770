package plugin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
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
    truncated backups, hidden files (backups being written) and encrypted
    backups it cannot decrypt. These are listed as SKIP, with the reason.

Encrypted backups are decrypted into a private temporary file to read their
manifest (and again to verify the newest), with --passphrase-file,
$DTR_BACKUP_PASSPHRASE or --identity-file; without any of them they are
skipped rather than prompted for, file after file. Because an encrypted
file that cannot be read may be an incremental image backup, no image backup
is removed while one is in DIR.

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
			return runPrune(dockerCli, opts)
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

// Kinds of backup, each its own series.
const (
	pruneMetadata = "metadata"
	pruneImages   = "images"
)

// Actions in the table.
const (
	actionKeep   = "keep"
	actionRemove = "remove"
	actionSkip   = "skip"
)

// pruneEntry is one file of DIR and what prune decided for it.
type pruneEntry struct {
	File           string     `json:"file"`
	Kind           string     `json:"kind,omitempty"`
	Started        *time.Time `json:"started,omitempty"`
	Size           int64      `json:"size"`
	Encrypted      bool       `json:"encrypted,omitempty"`
	ManifestSHA256 string     `json:"manifestSHA256,omitempty"`
	DependsOn      []string   `json:"dependsOn,omitempty"`
	Action         string     `json:"action"`
	// Rules are the policy's rules and the protections that keep it.
	Rules []string `json:"rules,omitempty"`
	// Reason says why a file is skipped, or removed.
	Reason   string `json:"reason,omitempty"`
	Verified *bool  `json:"verified,omitempty"`
	Removed  bool   `json:"removed"`
	Error    string `json:"error,omitempty"`

	path    string
	modTime time.Time
}

func runPrune(dockerCli command.Cli, opts pruneOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	st, err := os.Stat(opts.dir)
	if err != nil {
		return fmt.Errorf("cannot read the backup directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory: give the directory that holds the backups", opts.dir)
	}
	prog := opts.progress.printer(dockerCli)
	defer prog.Close()
	dirents, err := os.ReadDir(opts.dir)
	if err != nil {
		return fmt.Errorf("cannot read the backup directory: %w", err)
	}
	prog.Step("reading the manifests of %s in %s", plural(len(dirents), "file"), opts.dir)
	p := &pruner{dockerCli: dockerCli, dir: opts.dir, dec: opts.dec, prog: prog}
	entries := make([]*pruneEntry, 0, len(dirents))
	for _, de := range dirents {
		entries = append(entries, p.read(de))
	}
	p.decide(entries, opts.policy)

	failed := 0
	if pruneBeforeRemove != nil {
		pruneBeforeRemove()
	}
	if !opts.dryRun {
		for _, e := range entries {
			if e.Action != actionRemove {
				continue
			}
			if err := removeUnchanged(e); err != nil {
				e.Error = err.Error()
				failed++
				prog.Warn("cannot remove %s: %v", e.path, err)
				continue
			}
			e.Removed = true
			prog.Step("removed %s", e.path)
		}
	}
	if err := printPrune(dockerCli.Out(), opts, entries); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s in %s could not be removed (listed above)", plural(failed, "backup"), opts.dir)
	}
	return nil
}

// pruneBeforeRemove, when set by a test, runs between the decisions and
// the removals, where another process could change a file.
var pruneBeforeRemove func()

// pruner reads the files of DIR.
type pruner struct {
	dockerCli command.Cli
	dir       string
	dec       decryptOptions
	prog      *progress.Printer
}

// canDecrypt says whether a secret was given; prune never prompts, as it
// would once per file.
func (p *pruner) canDecrypt() bool {
	if p.dec.passphraseFile != "" || p.dec.identityFile != "" {
		return true
	}
	_, ok := os.LookupEnv(passphraseEnv)
	return ok
}

// open opens a backup, decrypting it into a private temporary file when
// it is encrypted.
func (p *pruner) open(path string) (*os.File, func(), error) {
	return openArchive(p.dockerCli, path, p.dec, p.prog)
}

// read identifies one file by its manifest; anything else is skipped.
func (p *pruner) read(de os.DirEntry) *pruneEntry {
	e := &pruneEntry{File: de.Name(), path: filepath.Join(p.dir, de.Name()), Action: actionSkip}
	info, err := os.Lstat(e.path)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	e.Size, e.modTime = info.Size(), info.ModTime()
	switch {
	case info.IsDir():
		e.Reason = "a directory"
		return e
	case info.Mode()&os.ModeSymlink != 0:
		e.Reason = "a symbolic link: prune removes only the backup files themselves"
		return e
	case !info.Mode().IsRegular():
		e.Reason = "not a regular file"
		return e
	case strings.HasPrefix(e.File, "."):
		e.Reason = "a hidden file (perhaps a backup being written)"
		return e
	}
	if e.Encrypted, err = backupfile.EncryptedFile(e.path); err != nil {
		e.Reason = err.Error()
		return e
	}
	if e.Encrypted && !p.canDecrypt() {
		e.Reason = "encrypted: give --passphrase-file, --identity-file or $" + passphraseEnv + " to read its manifest"
		return e
	}
	f, done, err := p.open(e.path)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	defer done()
	images, err := imagearchive.IsImageArchive(f)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	// Both Inspects read the tar headers only, seeking over the content,
	// and then the manifest.
	if images {
		rep, err := imagearchive.Inspect(f)
		switch {
		case err != nil:
			e.Reason = err.Error()
		case !rep.OK():
			e.Reason = "not a readable docker-dtr image backup: " + rep.Problems[0].String()
		case rep.Started == nil:
			e.Reason = "its manifest has no start time"
		default:
			e.Kind, e.Started, e.ManifestSHA256 = pruneImages, rep.Started, rep.ManifestSHA256
			for _, d := range rep.DependsOn {
				e.DependsOn = append(e.DependsOn, d.ManifestSHA256)
			}
		}
		return e
	}
	rep, err := archive.Inspect(f)
	switch {
	case err != nil:
		e.Reason = err.Error()
	case rep.Kind == archive.KindOfficial:
		e.Reason = "a docker/dtr backup archive: it has no docker-dtr manifest, so its time and completeness are unknown"
	case !rep.OK():
		e.Reason = "not a readable docker-dtr backup: " + rep.Problems[0].String()
	case rep.Started == nil:
		e.Reason = "its manifest has no start time"
	default:
		e.Kind, e.Started = pruneMetadata, rep.Started
	}
	return e
}

// decide applies the policy to each series, then the protections.
func (p *pruner) decide(entries []*pruneEntry, policy retention.Policy) {
	byID := map[string]*pruneEntry{}
	series := map[string][]retention.Item{}
	var unreadableEncrypted []string
	for _, e := range entries {
		if e.Kind == "" {
			if e.Encrypted {
				unreadableEncrypted = append(unreadableEncrypted, e.File)
			}
			continue
		}
		byID[e.File] = e
		series[e.Kind] = append(series[e.Kind], retention.Item{ID: e.File, Time: *e.Started})
	}
	ordered := map[string][]*pruneEntry{}
	for _, kind := range []string{pruneMetadata, pruneImages} {
		for _, d := range retention.Apply(series[kind], policy, time.Local) {
			e := byID[d.ID]
			e.Rules = d.Rules
			e.Action = actionRemove
			if d.Keep {
				e.Action = actionKeep
			}
			ordered[kind] = append(ordered[kind], e)
		}
	}
	// Every base of every incremental backup here, kept or not: a base is
	// removed only once nothing in DIR needs it.
	neededBy := map[string][]string{}
	for _, e := range ordered[pruneImages] {
		for _, h := range e.DependsOn {
			neededBy[h] = append(neededBy[h], e.File)
		}
	}
	for _, e := range ordered[pruneImages] {
		if by := neededBy[e.ManifestSHA256]; len(by) > 0 {
			keep(e, "needed by "+strings.Join(by, ", "))
		}
		if len(unreadableEncrypted) > 0 {
			keep(e, "DIR holds an encrypted file that could not be read ("+unreadableEncrypted[0]+"), perhaps an incremental backup that needs it")
		}
	}
	for _, kind := range []string{pruneMetadata, pruneImages} {
		p.protectNewestVerified(kind, ordered[kind])
	}
	for _, e := range entries {
		if e.Action == actionRemove {
			e.Reason = "no rule keeps it"
		}
	}
}

// keep marks a backup kept, for a reason beside the policy's.
func keep(e *pruneEntry, rule string) {
	e.Action = actionKeep
	e.Rules = append(e.Rules, rule)
}

// protectNewestVerified verifies the series newest first until one backup
// passes, and keeps it. When none passes, nothing of the series goes.
// When the policy removes nothing of the series, nothing is read.
func (p *pruner) protectNewestVerified(kind string, series []*pruneEntry) {
	// Verifying reads whole files: only worth it when something could go.
	removing := false
	for _, e := range series {
		removing = removing || e.Action == actionRemove
	}
	if !removing {
		return
	}
	for _, e := range series {
		ok, why := p.verify(e)
		e.Verified = &ok
		if ok {
			keep(e, "newest verified")
			return
		}
		p.prog.Warn("%s does not pass verify: %s", e.path, why)
	}
	p.prog.Warn("no %s backup in %s passes verify: none of them is removed", kind, p.dir)
	for _, e := range series {
		keep(e, "no "+kind+" backup passes verify")
	}
}

// verify is 'backup verify' of one backup, chain included, against DIR.
func (p *pruner) verify(e *pruneEntry) (bool, string) {
	f, done, err := p.open(e.path)
	if err != nil {
		return false, err.Error()
	}
	defer done()
	if e.Kind == pruneMetadata {
		rep, err := metered(p.prog, "verifying "+e.path+" (the newest metadata backup that passes is kept)", archive.Verify)(f)
		switch {
		case err != nil:
			return false, err.Error()
		case !rep.Verified:
			return false, firstProblem(rep.Problems, "not verified")
		}
		return true, ""
	}
	rep, err := metered(p.prog, "verifying "+e.path+" (the newest image backup that passes is kept)", imagearchive.Verify)(f)
	if err != nil {
		return false, err.Error()
	}
	if rep.OK() && rep.Incremental() {
		_, files, err := imagearchive.VerifyChain(rep, p.dir)
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			return false, err.Error()
		}
	}
	if !rep.OK() {
		return false, firstProblem(rep.Problems, "not verified")
	}
	return true, ""
}

func firstProblem(problems []archive.Problem, otherwise string) string {
	if len(problems) == 0 {
		return otherwise
	}
	msg := problems[0].String()
	if len(problems) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(problems)-1)
	}
	return msg
}

// removeUnchanged removes the file unless it changed since it was read:
// a file replaced in between was not the one decided on.
func removeUnchanged(e *pruneEntry) error {
	info, err := os.Lstat(e.path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Size() != e.Size || !info.ModTime().Equal(e.modTime) {
		return errors.New("it changed since prune read it: left alone")
	}
	return os.Remove(e.path)
}

// printPrune writes the table, or JSON: each series newest first, then
// the skipped files.
func printPrune(w io.Writer, opts pruneOptions, entries []*pruneEntry) error {
	sorted := append([]*pruneEntry(nil), entries...)
	rank := map[string]int{pruneMetadata: 0, pruneImages: 1, "": 2}
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
	for _, e := range sorted {
		if e.Action == actionRemove {
			wouldRemove++
			if e.Removed || opts.dryRun {
				freed += e.Size
			}
		}
		if e.Removed {
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
			Files   []*pruneEntry    `json:"files"`
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
		if e.Action == actionKeep {
			why = strings.Join(e.Rules, "; ")
		}
		if e.Error != "" {
			why += "; NOT REMOVED: " + e.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(e.Action), e.File, kind, started, oneLine(why))
	}
	tw.Flush()
	if opts.dryRun {
		fmt.Fprintf(w, "\ndry run: %s would be removed (%s); nothing was removed\n", plural(wouldRemove, "backup"), human.Bytes(freed))
	} else {
		fmt.Fprintf(w, "\nremoved %s (%s)\n", plural(removed, "backup"), human.Bytes(freed))
	}
	return nil
}

// oneLine keeps a table row on one line whatever a reason holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
