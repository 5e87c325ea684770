package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// imagePlan is what an image restore will do, for --dry-run.
type imagePlan struct {
	Replica     string `json:"replica"`
	Node        string `json:"node"`
	Volume      string `json:"volume"`
	VolumeEmpty bool   `json:"volumeEmpty"`
	// SafetyBackup is where what the volume holds is saved first; empty
	// when the volume is empty or --no-safety-backup.
	SafetyBackup string   `json:"safetyBackup,omitempty"`
	Stop         []string `json:"stop"`
	Files        int64    `json:"files"`
	Bytes        int64    `json:"bytes"`
	// From lists, for an incremental backup, the earlier backups whose
	// blobs are written with it.
	From []string `json:"from,omitempty"`
}

// imageRestore is one verified image backup on its way into a replica's
// image volume, with its safety net.
type imageRestore struct {
	dockerCli command.Cli
	opts      restoreOptions
	prog      *progress.Printer
	name      string
	file      *os.File
	rep       *imagearchive.Report
	// bases and baseFiles are the earlier backups an incremental one
	// depends on, open.
	bases     []*imagearchive.Base
	baseFiles []*os.File
	replica   *dtr.Replica
	vol       *imagevolume.Volume
	empty     bool
	plan      imagePlan
	// safetyPath is where what the volume holds is saved before it is
	// written over; empty when the volume is empty or --no-safety-backup.
	safetyPath string
	// agentErr says why the agent that empties the volume cannot run on
	// the node, when a failed write would be put back.
	agentErr error
	// wiped says the rollback emptied the volume.
	wiped bool
}

// runImageRestore restores an image backup into a replica's image volume:
// verify, refuse a volume that holds data unless --force, save what it
// holds in a safety backup, stop what mounts it, write through the archive
// API, check the volume against the manifest, put the volume back as it was
// if that failed, and start what was stopped again whatever happened.
func runImageRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions, f *os.File, name string, prog *progress.Printer) error {
	if opts.target.isDirect() {
		return fmt.Errorf("%s is an image backup: it is restored through the Docker context, without --rethinkdb-addr", name)
	}
	rep, err := metered(prog, "verifying "+name, imagearchive.Verify)(f)
	if err != nil {
		return err
	}
	if !rep.OK() {
		printImageReport(dockerCli.Err(), name, rep)
		return fmt.Errorf("refusing to restore %s: it did not verify (%s, listed above); nothing was changed", name, plural(len(rep.Problems)+rep.ProblemsOmitted, "problem"))
	}
	var bases []*imagearchive.Base
	var baseFiles []*os.File
	if rep.Incremental() {
		dir := chainDir(opts.file, opts.from)
		prog.Step("%s is incremental: looking for the %s it depends on in %s", name, plural(len(rep.DependsOn), "earlier backup"), dir)
		bases, baseFiles, err = imagearchive.VerifyChain(rep, dir)
		defer func() {
			for _, f := range baseFiles {
				f.Close()
			}
		}()
		if err != nil {
			return err
		}
		if !rep.OK() {
			printImageReport(dockerCli.Err(), name, rep)
			return fmt.Errorf("refusing to restore %s: its chain of earlier backups is not complete (%s, listed above; --from DIR says where they are); nothing was changed", name, plural(len(rep.Problems)+rep.ProblemsOmitted, "problem"))
		}
	}
	// A named replica may be unhealthy: its registry may be what is repaired.
	replica, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaID: opts.target.replicaID, allowUnhealthy: true}, prog)
	if err != nil {
		return err
	}
	if archive.MajorMinor(replica.Version) != archive.MajorMinor(rep.DTRVersion) {
		prog.Warn("%s is a backup of DTR %s, replica %s runs DTR %s", name, rep.DTRVersion, replica.ID, replica.Version)
	}
	vol, err := imagevolume.Of(replica)
	if err != nil {
		return err
	}
	empty, err := vol.Empty(ctx, dockerCli.Client())
	if err != nil {
		return err
	}
	r := &imageRestore{
		dockerCli: dockerCli, opts: opts, prog: prog, name: name, file: f, rep: rep,
		bases: bases, baseFiles: baseFiles, replica: replica, vol: vol, empty: empty,
	}
	if !empty && !opts.safety.skip {
		r.safetyPath = opts.safety.path(opts.file, "images", replica.ID)
	}
	r.plan = imagePlan{
		Replica: replica.ID, Node: replica.Node, Volume: vol.Name, VolumeEmpty: empty,
		SafetyBackup: r.safetyPath, Stop: []string{}, Files: rep.Files + rep.OmittedBlobs, Bytes: rep.Bytes + rep.OmittedBytes,
	}
	for _, b := range bases {
		r.plan.From = append(r.plan.From, b.Path)
	}
	for _, c := range vol.Users() {
		r.plan.Stop = append(r.plan.Stop, c.Name)
	}
	// Putting the volume back empties it first, which only the agent can
	// do: make sure it can run there before anything changes.
	if r.canRollBack() {
		r.agentErr = vol.CheckAgent(ctx, dockerCli.Client(), opts.target.agentBinary)
	}
	if opts.dryRun {
		return r.printPlan()
	}
	return r.run(ctx)
}

// canRollBack says whether a failed write is put back: not with
// --no-safety-backup, which gives the safety net up.
func (r *imageRestore) canRollBack() bool { return !r.opts.safety.skip }

func (r *imageRestore) printPlan() error {
	if r.opts.format == "json" {
		return writeJSON(r.dockerCli, r.plan)
	}
	out, plan := r.dockerCli.Out(), r.plan
	fmt.Fprintf(out, "Dry run: restoring %s into volume %s of replica %s on node %s would:\n", r.name, r.vol.Name, r.replica.ID, r.replica.Node)
	if !r.empty && !r.opts.force {
		fmt.Fprintf(out, "  refuse: the volume is not empty (--force writes over it; files the backup does not hold stay)\n")
	}
	if r.agentErr != nil {
		fmt.Fprintf(out, "  refuse: putting the volume back if writing fails runs this plugin as an agent on node %s: %v\n", r.replica.Node, r.agentErr)
	}
	switch {
	case r.safetyPath != "":
		fmt.Fprintf(out, "  save what the volume holds now to %s (a safety backup)\n", r.safetyPath)
	case !r.empty:
		fmt.Fprintf(out, "  write over what the volume holds without a safety backup (--no-safety-backup)\n")
	}
	fmt.Fprintf(out, "  stop %s\n", orNone(plan.Stop))
	fmt.Fprintf(out, "  write %d files, %s\n", plan.Files, archive.HumanBytes(plan.Bytes))
	for _, p := range plan.From {
		fmt.Fprintf(out, "    with blobs read from %s\n", p)
	}
	fmt.Fprintf(out, "  check the volume against the manifest\n")
	switch {
	case r.safetyPath != "":
		fmt.Fprintf(out, "  if writing fails: empty the volume and put the safety backup back\n")
	case r.canRollBack():
		fmt.Fprintf(out, "  if writing fails: empty the volume again\n")
	}
	fmt.Fprintf(out, "  start %s again\n", orNone(plan.Stop))
	return nil
}

// run confirms, saves the safety backup, stops what mounts the volume,
// writes and checks, and puts the volume back when that fails.
func (r *imageRestore) run(ctx context.Context) error {
	prog, opts, vol := r.prog, r.opts, r.vol
	api := r.dockerCli.Client()
	if !r.empty && !opts.force {
		return fmt.Errorf("volume %s of replica %s is not empty: refusing to restore %s over it; pass --force to write over it (what it holds is saved in a safety backup first; files the backup does not hold stay), or restore into an empty volume", vol.Name, r.replica.ID, r.name)
	}
	if r.agentErr != nil {
		return fmt.Errorf("refusing to restore %s, nothing was changed: putting volume %s back if writing fails runs this plugin as an agent on node %s: %w", r.name, vol.Name, r.replica.Node, r.agentErr)
	}
	if !opts.force {
		q := fmt.Sprintf("Restore %s into volume %s of replica %s on node %s, writing %d files (%s)", r.name, vol.Name, r.replica.ID, r.replica.Node, r.plan.Files, archive.HumanBytes(r.plan.Bytes))
		if len(r.plan.From) > 0 {
			q += " with blobs from " + strings.Join(r.plan.From, ", ")
		}
		if !r.empty {
			q += " over what it holds now"
		}
		if len(r.plan.Stop) > 0 {
			q += ", and stopping " + strings.Join(r.plan.Stop, ", ") + " while it writes"
		}
		if err := confirm(ctx, r.dockerCli, q+"?"); err != nil {
			return err
		}
	}
	switch {
	case r.safetyPath != "":
		if err := r.saveSafety(ctx); err != nil {
			return err
		}
	case !r.empty:
		prog.Warn("no safety backup (--no-safety-backup): if this restore fails, what volume %s holds now is lost", vol.Name)
	}

	restart, err := vol.Stop(ctx, api, prog.Step)
	defer func() {
		// After the rollback: the registry comes back on the volume as it is
		// meant to stay.
		if rerr := restart(); rerr != nil {
			prog.Warn("%v", rerr)
		}
	}()
	if err != nil {
		return fmt.Errorf("restore of %s failed before writing anything: %w", r.name, err)
	}
	prog.Step("writing %d files (%s) into volume %s", r.plan.Files, archive.HumanBytes(r.plan.Bytes), vol.Name)
	var check *imagearchive.Check
	var content io.ReadCloser
	if r.rep.Incremental() {
		content = chainStream(r.file, r.rep, r.bases, r.baseFiles)
	} else {
		content = contentStream(r.file, r.rep.ContentDir)
	}
	// The stream re-tars the archive's content (with, when incremental,
	// the blobs of earlier backups): its size is close to the archive's.
	streamSize := r.rep.Size + r.rep.OmittedBytes
	prog.PhaseOf("writing into volume "+vol.Name, "", 0, streamSize)
	err = vol.Write(ctx, api, prog.Reader(content), func(rd io.Reader) error {
		prog.Done()
		prog.Step("checking volume %s against the manifest", vol.Name)
		prog.PhaseOf("checking volume "+vol.Name, "", 0, streamSize)
		var cerr error
		check, cerr = imagearchive.CheckVolume(r.file, prog.Reader(rd))
		return cerr
	})
	content.Close() // ends the writer if the engine stopped reading
	if err == nil {
		prog.Done()
	}
	prog.Close()
	if err != nil {
		return r.failed(ctx, err)
	}
	if !check.OK() {
		for _, m := range check.Missing {
			prog.Warn("missing from the volume: %s", m)
		}
		for _, d := range check.Differ {
			prog.Warn("differs from the backup: %s", d)
		}
		return r.failed(ctx, fmt.Errorf("after writing, %d files are missing from the volume and %d differ from the backup (listed above)", len(check.Missing), len(check.Differ)))
	}
	msg := fmt.Sprintf("restored %s into volume %s of replica %s: %d files, %s, every file checked", r.name, vol.Name, r.replica.ID, check.Checked, archive.HumanBytes(r.plan.Bytes))
	if len(r.plan.From) > 0 {
		msg += fmt.Sprintf("; %d blobs (%s) from %s", r.rep.OmittedBlobs, archive.HumanBytes(r.rep.OmittedBytes), strings.Join(r.plan.From, ", "))
	}
	if check.Extra > 0 {
		msg += fmt.Sprintf(" (%s already there and not in the backup were left)", plural(int(check.Extra), "file"))
	}
	if opts.format == "json" {
		return writeJSON(r.dockerCli, struct {
			Plan  imagePlan           `json:"plan"`
			Check *imagearchive.Check `json:"check"`
		}{r.plan, check})
	}
	fmt.Fprintln(r.dockerCli.Out(), msg)
	return nil
}

// saveSafety backs up what the volume holds, the way 'backup images' does,
// and verifies the copy, before anything is changed.
func (r *imageRestore) saveSafety(ctx context.Context) error {
	vol := r.vol
	r.prog.Step("saving what volume %s holds now to %s", vol.Name, r.safetyPath)
	out, err := atomicfile.Create(r.safetyPath)
	if err != nil {
		return fmt.Errorf("cannot write the safety backup (choose another place with --safety-dir, or --no-safety-backup): %w; nothing was changed", err)
	}
	defer out.Abort()
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: r.replica.Version, ReplicaID: r.replica.ID, Node: r.replica.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(),
	}
	var m *imagearchive.Manifest
	err = vol.Read(ctx, r.dockerCli.Client(), func(rd io.Reader) error {
		var werr error
		m, werr = imagearchive.Write(out, rd, info, func(t imagearchive.Totals) {
			r.prog.Step("%d files, %s so far", t.Files, archive.HumanBytes(t.Bytes))
		})
		return werr
	})
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		return fmt.Errorf("saving the safety backup %s failed, nothing was changed: %w", r.safetyPath, err)
	}
	f, err := os.Open(r.safetyPath)
	if err != nil {
		return err
	}
	defer f.Close()
	// Blobs already corrupt in the registry are listed in the manifest,
	// kept as they are, and not problems.
	rep, err := imagearchive.Verify(f)
	if err == nil && !rep.OK() {
		err = fmt.Errorf("%s: %s", rep.Problems[0].Entry, rep.Problems[0].Message)
	}
	if err != nil {
		return fmt.Errorf("the safety backup %s did not verify, nothing was changed: %w", r.safetyPath, err)
	}
	if n := len(m.CorruptBlobs); n > 0 {
		r.prog.Warn("%s in volume %s already did not match their digests; the safety backup keeps them as they are", plural(n, "blob"), vol.Name)
	}
	fmt.Fprintf(r.dockerCli.Err(), "safety backup of volume %s: %s\n", vol.Name, r.safetyPath)
	return nil
}

// failed puts the volume back after a failed write and says what state it
// is in. It runs before the stopped containers are started again.
func (r *imageRestore) failed(ctx context.Context, cause error) error {
	what := "failed"
	if ctx.Err() != nil {
		// What broke off is only the engine's "context canceled".
		what, cause = "was interrupted", errors.New("interrupted")
	}
	vol := r.vol.Name
	if !r.canRollBack() {
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s, volume %s may be partly written and was not put back (--no-safety-backup): run the restore again with --force once the cause is fixed: %w", r.name, what, vol, cause))
	}
	r.prog.Step("restore %s: putting volume %s back as it was", what, vol)
	rctx, cancel := cleanupContext()
	defer cancel()
	err := r.rollback(rctx)
	switch {
	case err == nil && r.safetyPath != "":
		return fmt.Errorf("restore of %s %s, and volume %s was put back from the safety backup %s: %w", r.name, what, vol, r.safetyPath, cause)
	case err == nil:
		return fmt.Errorf("restore of %s %s, and volume %s was emptied again, as it was before: %w", r.name, what, vol, cause)
	case r.safetyPath != "":
		// Name the replica: the default one may be another by then.
		tgt := r.opts.target
		tgt.replicaID = r.replica.ID
		note := ""
		if !r.wiped {
			note = "; files the failed restore added stay beside what it puts back"
		}
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and putting the volume back failed too (%v): finish by hand, once the cause is fixed, with: %s%s",
			r.name, what, cause, err, byHand(r.dockerCli, &tgt, r.replica.Version, r.safetyPath), note))
	default:
		return exitcode.ByHandError(fmt.Errorf("restore of %s %s (%v), and putting the volume back failed too (%v): volume %s was empty before and may be partly written now; run the restore again with --force once the cause is fixed",
			r.name, what, cause, err, vol))
	}
}

// rollback empties the volume and writes the safety backup back, checking
// every file against its manifest.
func (r *imageRestore) rollback(ctx context.Context) error {
	api := r.dockerCli.Client()
	r.prog.Step("emptying volume %s (a helper container runs this plugin as an agent)", r.vol.Name)
	if err := r.vol.Wipe(ctx, api, r.opts.target.agentBinary); err != nil {
		return err
	}
	r.wiped = true
	if r.safetyPath == "" {
		empty, err := r.vol.Empty(ctx, api)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("volume %s still holds files after emptying it", r.vol.Name)
		}
		r.prog.Step("emptied volume %s again", r.vol.Name)
		return nil
	}
	f, err := os.Open(r.safetyPath)
	if err != nil {
		return err
	}
	defer f.Close()
	// Verified when it was written, minutes ago: the header is enough.
	rep, err := imagearchive.Inspect(f)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("the safety backup %s: %s", r.safetyPath, rep.Problems[0].Message)
	}
	r.prog.Step("writing the safety backup %s back into volume %s: %s (%s)", r.safetyPath, r.vol.Name, plural(int(rep.Files), "file"), archive.HumanBytes(rep.Bytes))
	var check *imagearchive.Check
	content := contentStream(f, rep.ContentDir)
	err = r.vol.Write(ctx, api, content, func(rd io.Reader) error {
		var cerr error
		check, cerr = imagearchive.CheckVolume(f, rd)
		return cerr
	})
	content.Close()
	if err != nil {
		return err
	}
	if !check.OK() || check.Extra > 0 {
		return fmt.Errorf("volume %s does not match the safety backup after writing it back: %d files missing, %d differ, %d not in it",
			r.vol.Name, len(check.Missing)+check.Omitted, len(check.Differ), check.Extra)
	}
	r.prog.Step("put volume %s back from %s: %s, every file checked", r.vol.Name, r.safetyPath, plural(int(check.Checked), "file"))
	return nil
}

// contentStream pipes the archive's content, names relative to the volume.
// The writer goroutine ends before the pipe's reader sees EOF or an error,
// so the file is free again once the engine has read the stream.
func contentStream(f *os.File, contentDir string) io.ReadCloser {
	return pipeBuffered(func(w io.Writer) error { return imagearchive.Content(f, contentDir, w) })
}

// chainStream pipes an incremental backup's content with the blobs its
// earlier backups hold, as contentStream does.
func chainStream(f *os.File, rep *imagearchive.Report, bases []*imagearchive.Base, files []*os.File) io.ReadCloser {
	return pipeBuffered(func(w io.Writer) error { return imagearchive.ChainContent(f, rep, bases, files, w) })
}

// pipeBuffered runs write into a pipe through a buffer: a tar writer
// writes each 512-byte header and padding on its own, and through a bare
// pipe each would reach the engine as a read, an HTTP chunk and a system
// call of its own.
func pipeBuffered(write func(io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "nothing (no running container mounts the volume)"
	}
	return strings.Join(names, ", ")
}
