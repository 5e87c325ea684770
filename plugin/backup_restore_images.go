package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
)

// imagePlan is what an image restore will do, for --dry-run.
type imagePlan struct {
	Replica     string   `json:"replica"`
	Node        string   `json:"node"`
	Volume      string   `json:"volume"`
	VolumeEmpty bool     `json:"volumeEmpty"`
	Stop        []string `json:"stop"`
	Files       int64    `json:"files"`
	Bytes       int64    `json:"bytes"`
}

// runImageRestore restores an image backup into a replica's image volume:
// verify, refuse a volume in use by data unless --force, stop what mounts
// it, write through the archive API, start them again whatever happened,
// and check the volume against the manifest.
func runImageRestore(ctx context.Context, dockerCli command.Cli, opts restoreOptions, f *os.File, name string, prog *progress.Printer) error {
	if opts.target.isDirect() {
		return fmt.Errorf("%s is an image backup: it is restored through the Docker context, without --rethinkdb-addr", name)
	}
	prog.Step("verifying %s", name)
	rep, err := imagearchive.Verify(f)
	if err != nil {
		return err
	}
	if !rep.OK() {
		printImageReport(dockerCli.Err(), name, rep)
		return fmt.Errorf("refusing to restore %s: it did not verify (%s, listed above); nothing was changed", name, plural(len(rep.Problems)+rep.ProblemsOmitted, "problem"))
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
	api := dockerCli.Client()
	empty, err := vol.Empty(ctx, api)
	if err != nil {
		return err
	}
	plan := imagePlan{Replica: replica.ID, Node: replica.Node, Volume: vol.Name, VolumeEmpty: empty, Stop: []string{}, Files: rep.Files, Bytes: rep.Bytes}
	for _, c := range vol.Users() {
		plan.Stop = append(plan.Stop, c.Name)
	}
	if opts.dryRun {
		if opts.format == "json" {
			return writeJSON(dockerCli, plan)
		}
		out := dockerCli.Out()
		fmt.Fprintf(out, "Dry run: restoring %s into volume %s of replica %s on node %s would:\n", name, vol.Name, replica.ID, replica.Node)
		if !empty {
			fmt.Fprintf(out, "  refuse: the volume is not empty (--force writes over it)\n")
		}
		fmt.Fprintf(out, "  stop %s\n", orNone(plan.Stop))
		fmt.Fprintf(out, "  write %d files, %s\n", plan.Files, archive.HumanBytes(plan.Bytes))
		fmt.Fprintf(out, "  start %s again, and check the volume against the manifest\n", orNone(plan.Stop))
		return nil
	}
	if !empty && !opts.force {
		return fmt.Errorf("volume %s of replica %s is not empty: refusing to restore %s over it; pass --force to write over it (files the backup does not hold stay), or restore into an empty volume", vol.Name, replica.ID, name)
	}

	restart, err := vol.Stop(ctx, api, prog.Step)
	defer func() {
		if rerr := restart(); rerr != nil {
			prog.Warn("%v", rerr)
		}
	}()
	if err != nil {
		return fmt.Errorf("restore of %s failed before writing anything: %w", name, err)
	}
	prog.Step("writing %d files (%s) into volume %s", rep.Files, archive.HumanBytes(rep.Bytes), vol.Name)
	var check *imagearchive.Check
	content := contentStream(f, rep.ContentDir)
	defer content.Close() // ends the writer if the engine stopped reading
	err = vol.Write(ctx, api, content, func(r io.Reader) error {
		prog.Step("checking volume %s against the manifest", vol.Name)
		var cerr error
		check, cerr = imagearchive.CheckVolume(f, r)
		return cerr
	})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		return fmt.Errorf("restore of %s failed, volume %s may be partly written (run the restore again with --force): %w", name, vol.Name, err)
	}
	if !check.OK() {
		for _, m := range check.Missing {
			prog.Warn("missing from the volume: %s", m)
		}
		for _, d := range check.Differ {
			prog.Warn("differs from the backup: %s", d)
		}
		return fmt.Errorf("restore of %s wrote volume %s, but %d files are missing and %d differ (listed above)", name, vol.Name, len(check.Missing), len(check.Differ))
	}
	msg := fmt.Sprintf("restored %s into volume %s of replica %s: %d files, %s, every file checked", name, vol.Name, replica.ID, check.Checked, archive.HumanBytes(rep.Bytes))
	if check.Extra > 0 {
		msg += fmt.Sprintf(" (%s already there and not in the backup were left)", plural(int(check.Extra), "file"))
	}
	if opts.format == "json" {
		return writeJSON(dockerCli, struct {
			Plan  imagePlan           `json:"plan"`
			Check *imagearchive.Check `json:"check"`
		}{plan, check})
	}
	fmt.Fprintln(dockerCli.Out(), msg)
	return nil
}

// contentStream pipes the archive's content, names relative to the volume.
// The writer goroutine ends before the pipe's reader sees EOF or an error,
// so the file is free again once the engine has read the stream.
func contentStream(f *os.File, contentDir string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(imagearchive.Content(f, contentDir, pw)) }()
	return pr
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "nothing (no running container mounts the volume)"
	}
	return strings.Join(names, ", ")
}
