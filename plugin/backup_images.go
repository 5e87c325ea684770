package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type imagesOptions struct {
	replica           replicaFlags
	output            string
	allowCorruptBlobs bool
	progress          progressOptions
	format            string
	since             string
	enc               encryptOptions
}

func newImagesCmd(dockerCli command.Cli) *cobra.Command {
	var opts imagesOptions
	cmd := &cobra.Command{
		Use:   "images [OPTIONS]",
		Short: "Back up DTR's image content (the registry volume) to a tar archive",
		Long: `Back up DTR's image content (the registry volume) to a tar archive.

The volume mounted at /storage on dtr-registry-<id> is read through the
Docker archive API of a helper container that mounts it read-only and is
never started: no ssh or sudo is needed. Before, for the progress's total
and ETA, this plugin's own binary measures the volume in a short-lived
helper (read-only, no network; --agent-binary when this binary cannot run
on the node); when it cannot, the backup goes on without a total. The
archive is a plain tar of the volume under one top directory, so
'tar -x --strip-components=1' into the volume restores it by hand; the
manifest with every file's SHA-256 is its last entry. Unfinished pushes
(_uploads) are left out. Every blob is checked against its digest while it
streams: a corrupt blob in the registry is reported by name, and the
command exits 1 unless --allow-corrupt-blobs.

When DTR stores images in S3, Azure, GCS or Swift there is no volume: back
that storage up with its own tools.

With --encrypt the backup is an OpenPGP message (AES-256, the format gpg
2.2 reads) that 'gpg -d' decrypts, sealed with a passphrase from
--passphrase-file, $DTR_BACKUP_PASSPHRASE or the terminal (asked twice);
--recipient-file encrypts to public keys instead, so that an unattended job
holds no secret. verify, inspect and restore decrypt it themselves.

With --since PATH the backup is incremental: a blob whose bytes an earlier
image backup holds is listed in the manifest (name, size, SHA-256 and which
backup holds it, by the hash of that backup's manifest) but not written;
everything else (links, tags, repositories) is. PATH is an image backup, or
a directory whose image backups all count (other files are skipped).
Earlier incremental backups count only for the blobs they hold themselves.
Encrypted earlier backups cannot serve in this version: they are skipped
with a note (refused when named). An earlier backup of another replica or
volume serves (blobs are content-addressed), with a warning. 'backup verify'
checks the chain and 'backup restore FILE --from DIR' writes the union.

Exit status: 0 the backup was written; 1 it failed, and no file is left at
-o, or it was written but blobs in the live registry are corrupt (without
--allow-corrupt-blobs); 2 wrong usage; 130 interrupted (SIGINT, SIGTERM),
and no file is left at -o.`,
		Example: `  docker dtr backup images -o backup-images.tar
  docker dtr backup images --since /backups/images -o /backups/images/backup-images-monday.tar
  docker dtr backup images --recipient-file backup-key.asc -o backup-images.tar.gpg
  docker dtr backup images --replica-id 0123456789ab -o - | aws s3 cp - s3://bucket/backup-images.tar`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&opts.output, "output", "o", "", `Write the archive to this file ("-" for standard output)`)
	opts.replica.addFlags(flags)
	flags.BoolVar(&opts.allowCorruptBlobs, "allow-corrupt-blobs", false, "Exit 0 even when blobs in the registry do not match their digests")
	opts.progress.addFlags(flags)
	flags.StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	flags.StringVar(&opts.since, "since", "", "Write only the blobs that the image backups in this file or directory do not hold (an incremental backup)")
	opts.enc.addFlags(flags)
	return cmd
}

func runImages(ctx context.Context, dockerCli command.Cli, opts imagesOptions) error {
	if err := checkOutput(dockerCli, opts.output); err != nil {
		return err
	}
	if err := opts.replica.validate(true); err != nil {
		return err
	}
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	prog := opts.progress.printer(dockerCli)
	defer prog.Close()
	var bases []*imagearchive.Base
	if opts.since != "" {
		var err error
		if bases, err = sinceBases(opts.since, opts.output, prog); err != nil {
			return err
		}
	}
	out, err := openBackup(dockerCli, opts.output, &opts.enc)
	if err != nil {
		return err
	}
	defer out.Abort()
	ctx, stop := withSignals(ctx)
	defer stop()
	rep, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaFlags: opts.replica}, prog)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	vol, err := imagevolume.Of(rep)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	for _, b := range bases {
		if b.ReplicaID != rep.ID || b.Volume != vol.Name {
			prog.Warn("%s is a backup of volume %s of replica %s, not of %s of %s: its blobs serve all the same (they are content-addressed)", b.Path, b.Volume, b.ReplicaID, vol.Name, rep.ID)
		}
	}
	prog.Step("reading volume %s (%s) through a helper container on node %s", vol.Name, vol.Driver, rep.Node)
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: rep.Version, ReplicaID: rep.ID, Node: rep.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(), Since: bases,
	}
	var m *imagearchive.Manifest
	total := volumeTotal(ctx, dockerCli, vol, opts.replica.agentBinary, prog)
	prog.PhaseOf("reading volume "+vol.Name, "", 0, total)
	err = vol.Read(ctx, dockerCli.Client(), func(r io.Reader) error {
		m, err = imagearchive.Write(out, prog.Reader(r), info, func(t imagearchive.Totals) {
			prog.Step("%d files, %s so far", t.Files, human.Bytes(t.Bytes))
		})
		return err
	})
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	prog.Done()
	if err := out.Commit(); err != nil {
		return err
	}
	summary := fmt.Sprintf("%s: DTR %s, replica %s, volume %s: %d files, %d blobs, %s%s",
		displayOutput(opts.output), m.DTRVersion, m.ReplicaID, m.Volume, m.Files, m.Blobs, human.Bytes(m.Bytes), opts.enc.describe())
	if len(m.DependsOn) > 0 {
		summary += fmt.Sprintf("; incremental: %d more blobs, %s, held by %s (%s)", m.OmittedBlobs, human.Bytes(m.OmittedBytes), human.Plural(len(m.DependsOn), "earlier backup"), dependencyNames(m.DependsOn))
	} else if len(bases) > 0 {
		summary += "; a full backup: the earlier backups hold none of its blobs"
	}
	if m.UploadFiles > 0 {
		summary += fmt.Sprintf(" (%s in unfinished uploads left out)", human.Plural(int(m.UploadFiles), "file"))
	}
	if err := out.result(dockerCli, prog, opts.format, imagesSummary{File: opts.output, Encrypted: opts.enc.enabled(), Manifest: m}, summary); err != nil {
		return err
	}
	if n := len(m.CorruptBlobs); n > 0 {
		for _, b := range m.CorruptBlobs {
			prog.Warn("corrupt in the registry (data does not match its digest): %s", b)
		}
		if !opts.allowCorruptBlobs {
			return fmt.Errorf("the backup is complete, but %s in the live registry do not match their digests (listed above): repair them, or pass --allow-corrupt-blobs", human.Plural(n, "blob"))
		}
	}
	return nil
}

// sizeTimeout bounds measuring the volume: a walk costs a stat per file,
// far less than reading the files, so a huge registry still fits.
var sizeTimeout = 2 * time.Minute

// volumeTotal is the progress's total for reading the volume: the size of
// the archive the engine will send, which the meter counts, measured by
// the agent in a helper. Any failure only costs the total and the ETA,
// never the backup. Quiet progress shows neither: no helper is run.
func volumeTotal(ctx context.Context, dockerCli command.Cli, vol *imagevolume.Volume, agentBinary string, prog *progress.Printer) int64 {
	if prog.Mode() == progress.Quiet {
		return 0
	}
	sctx, cancel := context.WithTimeout(ctx, sizeTimeout)
	defer cancel()
	u, err := vol.Size(sctx, dockerCli.Client(), agentBinary)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return 0 // interrupted: the read that follows says so
	case sctx.Err() != nil:
		prog.Step("volume size unknown (measuring it took over %s): no ETA", sizeTimeout)
		return 0
	default:
		prog.Step("volume size unknown (%v): no ETA", err)
		return 0
	}
	uploads := ""
	if u.UploadFiles > 0 {
		uploads = fmt.Sprintf(", and %s, %s in unfinished uploads to skip", human.Plural(int(u.UploadFiles), "file"), human.Bytes(u.UploadBytes))
	}
	prog.Step("volume %s holds %s, %s%s", vol.Name, human.Plural(int(u.Files), "file"), human.Bytes(u.Bytes), uploads)
	return u.Stream
}

// chooseReplica finds the DTR behind the Docker context and picks the
// replica, printing which and why.
func chooseReplica(ctx context.Context, dockerCli command.Cli, o *targetOptions, prog *progress.Printer) (*dtr.Replica, error) {
	t, err := o.locate(ctx, dockerCli, prog)
	if err != nil {
		return nil, err
	}
	return t.Replica, nil
}

// sinceBases reads the earlier image backups --since names: a file, or
// every image backup in a directory, oldest first. output, the backup
// being written, is not one of them.
func sinceBases(path, output string, prog *progress.Printer) ([]*imagearchive.Base, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if !st.IsDir() {
		b, err := readBase(path)
		if err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		prog.Step("incremental: %s holds %s", path, human.Plural(b.Blobs(), "blob"))
		return []*imagearchive.Base{b}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	outAbs, _ := filepath.Abs(output)
	var bases []*imagearchive.Base
	seen := map[string]bool{}
	blobs := map[string]bool{}
	for _, e := range ents {
		p := filepath.Join(path, e.Name())
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if abs, _ := filepath.Abs(p); output != "-" && abs == outAbs {
			continue // written over: not an earlier backup
		}
		b, err := readBase(p)
		switch {
		case errors.Is(err, errNotImages):
			continue
		case err != nil:
			prog.Warn("--since: skipping %s: %v", p, err)
			continue
		case seen[b.ManifestSHA256]:
			continue // a copy
		}
		seen[b.ManifestSHA256] = true
		bases = append(bases, b)
	}
	if len(bases) == 0 {
		return nil, fmt.Errorf("--since %s: the directory holds no readable image backup", path)
	}
	// The oldest first: a full backup before the incremental ones after it.
	sort.SliceStable(bases, func(i, j int) bool { return bases[i].Created.Before(bases[j].Created) })
	for _, b := range bases {
		for _, d := range b.HeldDigests() {
			blobs[d] = true
		}
	}
	prog.Step("incremental: %s in %s hold %s", human.Plural(len(bases), "image backup"), path, human.Plural(len(blobs), "blob"))
	return bases, nil
}

var errNotImages = errors.New("not an image backup")

// readBase reads one earlier image backup's manifest.
func readBase(p string) (*imagearchive.Base, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if enc, err := backupfile.Encrypted(f); err != nil {
		return nil, err
	} else if enc {
		return nil, errors.New("encrypted: earlier backups must be plain tar files for --since in this version (decrypt it with gpg -d first)")
	}
	if ok, err := imagearchive.IsImageArchive(f); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotImages
	}
	b, err := imagearchive.OpenBase(f, p)
	if err != nil {
		return nil, err
	}
	return b, nil
}
