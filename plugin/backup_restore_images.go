package plugin

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker/cli/cli/command"
)

// runImageRestore verifies an image backup (and its chain), plans its
// restore into a replica's image volume, and shows the plan (--dry-run) or
// has the engine run it.
func runImageRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions, in *backupfile.Input, name string, prog *progress.Printer) error {
	if opts.target.isDirect() {
		return fmt.Errorf("%s is an image backup: it is restored through the Docker context, without --rethinkdb-addr", name)
	}
	open, size := imageSource(in)
	// While the backup verifies, the engine's side of the plan is found:
	// the replica, whether its volume is empty (through the helper the
	// restore writes through, created and never started) and whether the
	// agent can run there. That only reads, and what it says waits until
	// the verify has said its own; nothing changes before the backup has
	// verified, and a backup that does not verify leaves no helper.
	held, release := prog.Held()
	found := make(chan lookedAt, 1)
	go func() { found <- lookAtVolume(ctx, dockerCli, opts, held) }()
	rep, chain, err := restore.VerifyImages(open, size, name, imagearchive.ChainDir(opts.file, opts.from), chainDecrypter(dockerCli, opts.dec, in, prog), prog)
	look := <-found
	defer func() {
		if cerr := look.look.Close(); cerr != nil {
			prog.Warn("%v", cerr)
		}
	}()
	if err != nil {
		return refused(dockerCli, err)
	}
	defer chain.Close()
	release()
	if look.err != nil {
		return look.err
	}
	replica := look.replica
	t, err := restore.PlanImages(&restore.Images{
		Name: name, Open: open, Report: rep, Chain: chain, Replica: replica, Docker: dockerCli.Client(),
		AgentBinary: opts.target.agentBinary, ToVolume: opts.toVolume, NoSafety: opts.safety.skip, SafetySeal: opts.safety.seal(in),
		Progress: prog, Stderr: dockerCli.Err(),
	}, look.look, opts.safety.dir, opts.file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := t.Close(); cerr != nil {
			prog.Warn("%v", cerr)
		}
	}()
	opts.safety.warnClear(in, name, t.SafetyPath(), prog)
	if opts.dryRun {
		return printImagePlan(dockerCli, opts, t)
	}
	// Name the replica: the default one may be another by then.
	same := opts.target
	same.replicaID = replica.ID
	byHand := func(safety string) string { return byHand(dockerCli, &same, opts.dec, replica.Version, safety) }
	o := engineOptions(dockerCli, opts, prog, byHand)
	if err := journalOptionsSum(dockerCli, &o, &same, opts.dec, replica, opts.file, "", prog); err != nil {
		return err
	}
	o.ManifestSHA256 = rep.ManifestSHA256
	if err := restore.Run(ctx, t, o); err != nil {
		return pendingError(dockerCli, &same, err)
	}
	return printImageResult(dockerCli, opts, t)
}

// lookedAt is the replica an image restore writes into and what
// restore.LookAtVolume found of its volume.
type lookedAt struct {
	replica *dtr.Replica
	look    *restore.VolumeLook
	err     error
}

func lookAtVolume(ctx context.Context, dockerCli command.Cli, opts restoreOptions, prog *progress.Printer) lookedAt {
	// A named replica may be unhealthy: its registry may be what is repaired.
	replica, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaFlags: opts.target.replicaFlags, allowUnhealthy: true}, prog)
	if err != nil {
		return lookedAt{err: err}
	}
	look, err := restore.LookAtVolume(ctx, dockerCli.Client(), replica, opts.target.agentBinary, !opts.safety.skip,
		storageReader(dockerCli, replica, opts.target.agentBinary, prog), opts.toVolume, prog)
	return lookedAt{replica: replica, look: look, err: err}
}

// printImageResult shows what an image restore wrote and checked.
func printImageResult(dockerCli command.Cli, opts restoreOptions, t *restore.Images) error {
	name, rep, replica := t.Name, t.Report, t.Replica
	plan, check := t.Plan, t.Check
	if opts.format == "json" {
		return writeJSON(dockerCli, struct {
			Plan  restore.ImagePlan   `json:"plan"`
			Check *imagearchive.Check `json:"check"`
		}{plan, check})
	}
	msg := fmt.Sprintf("restored %s into %s of replica %s: %d files, %s, every file checked", name, t.Volume.Where(), replica.ID, check.Checked, human.Bytes(plan.Bytes))
	if len(plan.From) > 0 {
		msg += fmt.Sprintf("; %d blobs (%s) from %s", rep.OmittedBlobs, human.Bytes(rep.OmittedBytes), strings.Join(plan.From, ", "))
	}
	if check.Extra > 0 {
		msg += fmt.Sprintf(" (%s already there and not in the backup were left)", human.Plural(int(check.Extra), "file"))
	}
	fmt.Fprintln(dockerCli.Out(), msg)
	return nil
}

func printImagePlan(dockerCli command.Cli, opts restoreOptions, t *restore.Images) error {
	plan := t.Plan
	if opts.format == "json" {
		return writeJSON(dockerCli, plan)
	}
	out := dockerCli.Out()
	fmt.Fprintf(out, "Dry run: restoring %s into %s of replica %s on node %s would:\n", t.Name, t.Volume.Where(), plan.Replica, plan.Node)
	if !plan.VolumeEmpty && !opts.force {
		fmt.Fprintf(out, "  refuse: the volume is not empty (--force writes over it; files the backup does not hold stay)\n")
	}
	if t.AgentErr != nil {
		fmt.Fprintf(out, "  refuse: putting the volume back if writing fails runs this plugin as an agent on node %s: %v\n", plan.Node, t.AgentErr)
	}
	switch {
	case plan.SafetyBackup != "":
		fmt.Fprintf(out, "  save what the volume holds now to %s (a safety backup, %s)\n", plan.SafetyBackup, plan.SafetyProtection)
	case !plan.VolumeEmpty:
		fmt.Fprintf(out, "  write over what the volume holds without a safety backup (--no-safety-backup)\n")
	}
	fmt.Fprintf(out, "  stop %s\n", orNone(plan.Stop))
	fmt.Fprintf(out, "  write %d files, %s\n", plan.Files, human.Bytes(plan.Bytes))
	for _, p := range plan.From {
		fmt.Fprintf(out, "    with blobs read from %s\n", p)
	}
	fmt.Fprintf(out, "  check every file against the manifest as it is written\n")
	if !plan.VolumeEmpty {
		fmt.Fprintf(out, "  read the volume back and check it against the manifest (it held files before)\n")
	}
	switch {
	case plan.SafetyBackup != "":
		fmt.Fprintf(out, "  if writing fails: empty the volume and put the safety backup back\n")
	case t.CanRollBack():
		fmt.Fprintf(out, "  if writing fails: empty the volume again\n")
	}
	fmt.Fprintf(out, "  start %s again\n", orNone(plan.Stop))
	return nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "nothing (no running container mounts the volume)"
	}
	return strings.Join(names, ", ")
}

// fileSize is f's size, for a progress meter; 0 when it is not known.
func fileSize(f *os.File) int64 {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return st.Size()
	}
	return 0
}

// imageSource reads an image backup for each pass of its restore: an
// encrypted one as a fresh decryption (no plaintext file), a plain one
// from its file, whose size the progress then knows. Not Input.Pass: the
// content pass checks every file and the manifest against the verified
// report already, and a second SHA-256 of every byte would slow it.
func imageSource(in *backupfile.Input) (imagearchive.Source, int64) {
	if in.Plain != nil {
		return in.Plain, 0
	}
	return imagearchive.FileSource(in.File), fileSize(in.File)
}
