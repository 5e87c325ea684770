// Package prune is the prune engine: MakePlan reads a directory of backups
// and decides, by a keep policy and the protections, which to keep, remove
// or skip; Execute removes what it decided to, if unchanged since.
package prune

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/retention"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
)

// Options say what to prune and how backups are read.
type Options struct {
	Dir    string
	Policy retention.Policy
	// Open opens a backup for reading: an encrypted one is read as it is
	// decrypted (Input.Plain).
	Open func(path string) (*backupfile.Input, error)
	// CanDecrypt says a secret was given: prune never prompts, as it would
	// once per file. NoSecret is then why an encrypted file is skipped.
	CanDecrypt bool
	NoSecret   string
	Progress   *progress.Printer
}

// Plan is what prune decided for every file of Dir.
type Plan struct {
	Dir     string
	Entries []*Entry
}

// MakePlan reads every file of opts.Dir by its manifest and decides. It
// changes nothing.
func MakePlan(opts Options) (*Plan, error) {
	st, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read the backup directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: give the directory that holds the backups", opts.Dir)
	}
	dirents, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read the backup directory: %w", err)
	}
	opts.Progress.Step("reading the manifests of %s in %s", human.Plural(len(dirents), "file"), opts.Dir)
	p := &pruner{opts}
	entries := make([]*Entry, 0, len(dirents))
	for _, de := range dirents {
		entries = append(entries, p.read(de))
	}
	p.decide(entries)
	return &Plan{Dir: opts.Dir, Entries: entries}, nil
}

// Execute removes the files the plan removes, each only if it has not
// changed since it was read, and returns how many could not be.
func (pl *Plan) Execute(prog *progress.Printer) (failed int) {
	// Backups that were to go and could not; their index stays too. A
	// directory lists FILE before FILE.index.
	kept := map[string]bool{}
	for _, e := range pl.Entries {
		if e.Action != Remove {
			continue
		}
		if e.IndexOf != "" && kept[e.IndexOf] {
			e.Error = e.IndexOf + " could not be removed: its index stays"
			continue
		}
		remove := removeUnchanged
		if e.Temporary {
			remove = removeStale
		}
		if err := remove(e); err != nil {
			e.Error = err.Error()
			kept[e.File] = true
			failed++
			prog.Warn("cannot remove %s: %v", e.path, err)
			continue
		}
		e.Removed = true
		prog.Step("removed %s", e.path)
	}
	return failed
}

// pruner reads and decides.
type pruner struct{ Options }

// Kinds of backup, each its own series.
const (
	Metadata = "metadata"
	Images   = "images"
)

// Actions in the table.
const (
	Keep   = "keep"
	Remove = "remove"
	Skip   = "skip"
)

// Entry is one file of DIR and what prune decided for it.
type Entry struct {
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

	// Temporary is a killed backup's temporary file (pkg/atomicfile),
	// which no live run holds: it is removed whatever the policy.
	Temporary bool `json:"temporary,omitempty"`
	// IndexOf, for the plain index of an encrypted image backup
	// (FILE.index), is FILE: the index goes with it, and once it is gone.
	IndexOf string `json:"indexOf,omitempty"`

	path    string
	modTime time.Time
}

// read identifies one file by its manifest; anything else is skipped.
func (p *pruner) read(de os.DirEntry) *Entry {
	e := &Entry{File: de.Name(), path: filepath.Join(p.Dir, de.Name()), Action: Skip}
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
	case atomicfile.IsTemp(e.File):
		stale, err := atomicfile.Stale(e.path)
		switch {
		case err != nil:
			e.Reason = err.Error()
		case stale:
			e.Temporary, e.Action = true, Remove
			e.Reason = "the temporary file of a backup that was killed"
		default:
			e.Reason = "the temporary file of a backup being written"
		}
		return e
	case strings.HasPrefix(e.File, "."):
		e.Reason = "a hidden file (perhaps a backup being written)"
		return e
	case imagearchive.IsIndexFile(e.path):
		e.IndexOf = strings.TrimSuffix(e.File, imagearchive.IndexSuffix)
		e.Reason = "the index of " + e.IndexOf
		if _, err := os.Lstat(filepath.Join(p.Dir, e.IndexOf)); errors.Is(err, os.ErrNotExist) {
			e.Action, e.Reason = Remove, "the index of "+e.IndexOf+", which is gone"
		}
		return e
	}
	if e.Encrypted, err = backupfile.EncryptedFile(e.path); err != nil {
		e.Reason = err.Error()
		return e
	}
	if e.Encrypted && !p.CanDecrypt {
		e.Reason = p.NoSecret
		return e
	}
	f, err := p.Open(e.path)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	defer f.Close()
	images, err := verify.IsImages(f)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	// Both Inspects of a file read the tar headers only, seeking over the
	// content, and then the manifest; of an encrypted backup, they read
	// it as it is decrypted, with no plaintext file.
	if images {
		rep, err := inspectImages(f)
		switch {
		case err != nil:
			e.Reason = err.Error()
		case !rep.OK():
			e.Reason = "not a readable docker-dtr image backup: " + rep.Problems[0].String()
		case rep.Started == nil:
			e.Reason = "its manifest has no start time"
		default:
			e.Kind, e.Started, e.ManifestSHA256 = Images, rep.Started, rep.ManifestSHA256
			for _, d := range rep.DependsOn {
				e.DependsOn = append(e.DependsOn, d.ManifestSHA256)
			}
		}
		return e
	}
	rep, err := inspectMetadata(f)
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
		e.Kind, e.Started = Metadata, rep.Started
	}
	return e
}

// decide applies the policy to each series, then the protections.
func (p *pruner) decide(entries []*Entry) {
	byID := map[string]*Entry{}
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
	ordered := map[string][]*Entry{}
	for _, kind := range []string{Metadata, Images} {
		for _, d := range retention.Apply(series[kind], p.Policy, time.Local) {
			e := byID[d.ID]
			e.Rules = d.Rules
			e.Action = Remove
			if d.Keep {
				e.Action = Keep
			}
			ordered[kind] = append(ordered[kind], e)
		}
	}
	// Every base of every incremental backup here, kept or not: a base is
	// removed only once nothing in DIR needs it.
	neededBy := map[string][]string{}
	for _, e := range ordered[Images] {
		for _, h := range e.DependsOn {
			neededBy[h] = append(neededBy[h], e.File)
		}
	}
	for _, e := range ordered[Images] {
		if by := neededBy[e.ManifestSHA256]; len(by) > 0 {
			keep(e, "needed by "+strings.Join(by, ", "))
		}
		if len(unreadableEncrypted) > 0 {
			keep(e, "DIR holds an encrypted file that could not be read ("+unreadableEncrypted[0]+"), perhaps an incremental backup that needs it")
		}
	}
	for _, kind := range []string{Metadata, Images} {
		p.protectNewestVerified(kind, ordered[kind])
	}
	for _, e := range entries {
		if e.Action == Remove && !e.Temporary && e.IndexOf == "" {
			e.Reason = "no rule keeps it"
		}
	}
	// An index goes with its backup.
	for _, e := range entries {
		if b := byID[e.IndexOf]; e.IndexOf != "" && b != nil && b.Action == Remove {
			e.Action, e.Reason = Remove, "the index of "+e.IndexOf+", removed with it"
		}
	}
}

// keep marks a backup kept, for a reason beside the policy's.
func keep(e *Entry, rule string) {
	e.Action = Keep
	e.Rules = append(e.Rules, rule)
}

// protectNewestVerified verifies the series newest first until one backup
// passes, and keeps it. When none passes, nothing of the series goes.
// When the policy removes nothing of the series, nothing is read.
func (p *pruner) protectNewestVerified(kind string, series []*Entry) {
	// Verifying reads whole files: only worth it when something could go.
	removing := false
	for _, e := range series {
		removing = removing || e.Action == Remove
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
		p.Progress.Warn("%s does not pass verify: %s", e.path, why)
	}
	p.Progress.Warn("no %s backup in %s passes verify: none of them is removed", kind, p.Dir)
	for _, e := range series {
		keep(e, "no "+kind+" backup passes verify")
	}
}

// verify is 'backup verify' of one backup, chain included, against DIR.
func (p *pruner) verify(e *Entry) (bool, string) {
	f, err := p.Open(e.path)
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	if e.Kind == Metadata {
		rep, err := verifyMetadata(p.Progress, "verifying "+e.path+" (the newest metadata backup that passes is kept)", f)
		switch {
		case err != nil:
			return false, err.Error()
		case !rep.Verified:
			return false, firstProblem(rep.Problems, "not verified")
		}
		return true, ""
	}
	rep, err := verifyImages(p.Progress, "verifying "+e.path+" (the newest image backup that passes is kept)", f)
	if err != nil {
		return false, err.Error()
	}
	if rep.OK() && rep.Incremental() {
		if err := imagearchive.CheckChain(rep, p.Dir, p.decrypter()); err != nil {
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

// removeStale removes a killed run's temporary file, checking again that
// no live run holds it.
func removeStale(e *Entry) error {
	removed, err := atomicfile.RemoveStale(e.path)
	if err == nil && !removed {
		err = errors.New("a run holds it now: left alone")
	}
	return err
}

// removeUnchanged removes the file unless it changed since it was read:
// a file replaced in between was not the one decided on.
func removeUnchanged(e *Entry) error {
	info, err := os.Lstat(e.path)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() || info.Size() != e.Size || !info.ModTime().Equal(e.modTime) {
		return errors.New("it changed since prune read it: left alone")
	}
	return os.Remove(e.path)
}

// decrypter opens encrypted earlier backups of a chain, when a secret was
// given.
func (p *pruner) decrypter() imagearchive.Decrypter {
	if !p.CanDecrypt {
		return nil
	}
	return func(path string) (imagearchive.Source, func(), error) {
		in, err := p.Open(path)
		if err != nil {
			return nil, nil, err
		}
		if in.Plain != nil {
			return in.Plain, in.Close, nil
		}
		return imagearchive.FileSource(in.File), in.Close, nil
	}
}

// The readers below read an encrypted backup (in.Plain) as it is
// decrypted, so that its plaintext never reaches a file, and a plain one
// as a file.

func inspectImages(in *backupfile.Input) (*imagearchive.Report, error) {
	if in.Plain != nil {
		return imagearchive.InspectStream(in.Plain)
	}
	return imagearchive.Inspect(in.File)
}

func inspectMetadata(in *backupfile.Input) (*archive.Report, error) {
	if in.Plain != nil {
		return archive.InspectStream(in.Plain)
	}
	return archive.Inspect(in.File)
}

func verifyImages(prog *progress.Printer, step string, in *backupfile.Input) (*imagearchive.Report, error) {
	if in.Plain != nil {
		prog.Step("%s, %s", step, in.Streamed())
		return imagearchive.VerifyStream(in.Plain)
	}
	return progress.Metered(prog, step, imagearchive.Verify)(in.File)
}

func verifyMetadata(prog *progress.Printer, step string, in *backupfile.Input) (*archive.Report, error) {
	if in.Plain != nil {
		prog.Step("%s, %s", step, in.Streamed())
		return archive.VerifyStream(in.Plain)
	}
	return progress.Metered(prog, step, archive.Verify)(in.File)
}
