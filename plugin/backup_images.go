package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagebackup"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
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
Docker archive API of a helper container that mounts it read-only: no ssh
or sudo is needed. The helper runs this plugin's own binary to hold a
lease: once the plugin is gone (killed, or its connection silent for 45
seconds) it exits and the container removes itself. Where the binary
cannot run on the node the helper is never started, and one that a killed
run leaves is removed by the next run from the same machine. For the
progress's total and ETA, the same binary in the same helper measures the
volume meanwhile: the read does not wait for it, and the total shows once
measured; when it cannot measure, the backup goes on without a total. The
archive is a plain tar of the volume under one top directory, so
'tar -x --strip-components=1' into the volume restores it by hand; the
manifest with every file's SHA-256 is its last entry. Unfinished pushes
(_uploads) are left out. Every blob is checked against its digest while it
streams: a corrupt blob in the registry is reported by name, and the
command exits 1 unless --allow-corrupt-blobs.

Where DTR keeps its images comes from DTR's own settings (the registry's
storage configuration in dtr2.properties), read through a database helper
on the node before anything is written; the volume mounted at /storage is
no sign of it, as DTR mounts one whatever the driver. When the settings
say s3 (AWS or an S3-compatible store), the bucket is backed up instead of
the volume: this plugin's binary, in a helper on the node (in the network
namespace of the replica's RethinkDB, with DTR's CA), reads the settings
itself and reads the bucket under its root directory with
docker/distribution's s3 driver, the code DTR's registry runs. The archive
is the same as a volume's, so verify, --since, encryption and restore work
on it unchanged. The storage's credentials never leave the node, and are
never in the helper's command, environment, labels or logs, nor in the
archive. When the settings say Azure, GCS or Swift, or the volume (or
bucket) holds no image, the backup would restore nothing: the command says
so in one line, exits 1 and writes nothing. Back such storage up with its
provider's tools (azcopy, gsutil rsync, swift, or the store's own
versioning and replication), and DTR's metadata with 'backup create'.

` + outputHelp + `
` + encryptHelp + `
With --since PATH the backup is incremental: a blob whose bytes an earlier
image backup holds is listed in the manifest (name, size, SHA-256 and which
backup holds it, by the hash of that backup's manifest) but not written;
everything else (links, tags, repositories) is. The volume is listed first
(sizes and times, no content read) by this plugin's binary in a read-only
helper, which then sends only the files the earlier backups lack: a held
blob is not read again, it is trusted by its digest and by the earlier
backup's manifest ('backup verify' of the chain checks those bytes). Where
the binary cannot run on the node, the whole volume is read as for a full
backup. PATH is an image backup, or
a directory whose image backups all count (other files are skipped).
Earlier incremental backups count only for the blobs they hold themselves.
An encrypted earlier backup serves through its index, FILE.index, a plain
file written beside every encrypted image backup: the digests and sizes of
the blobs it holds, no content and no names (docs/security.md says what it
reveals). No secret key is needed: the index is trusted as the backup's
owner wrote it, and 'backup verify' with the secret checks it against the
manifest. An encrypted backup without an index is skipped with a note
(refused when named). An earlier backup of another replica or
volume serves (blobs are content-addressed), with a warning. 'backup verify'
checks the chain and 'backup restore FILE --from DIR' writes the union.

Exit status: 0 the backup was written; 1 it failed, and no file is left at
-o, or it was written but blobs in the live registry are corrupt (without
--allow-corrupt-blobs); 2 wrong usage; 130 interrupted (SIGINT, SIGTERM),
and no file is left at -o.`,
		Example: `  docker dtr backup images -o backup-images.tar
  docker dtr backup images --since /backups/images -o /backups/images/backup-images-monday.tar
  docker dtr backup images --recipient-file backup-key.asc -o backup-images.tar.gpg
  docker dtr backup images --recipient-file backup-key.asc --since backup-images.tar.gpg -o backup-images-monday.tar.gpg
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
	if zstdName(opts.output) {
		return exitcode.UsageError(fmt.Errorf("-o %s: image backups are not compressed (their layers are compressed already): name it without .zst", opts.output))
	}
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()
	// The earlier backups are read while the DTR is found and the
	// helper starts.
	var since *imagebackup.Pending
	if opts.since != "" {
		since = imagebackup.ReadSince(opts.since, opts.output, prog)
	}
	out, err := openBackup(dockerCli, opts.output, &opts.enc, false)
	if err != nil {
		return err
	}
	defer out.Abort()
	out.reportSwept(prog)
	ctx, stop := withSignals(ctx)
	defer stop()
	// A backup of a volume a restore left half written would be kept as good.
	if err := refuseUnfinished(ctx, dockerCli, &targetOptions{replicaFlags: opts.replica}, journal.KindImages, "back up"); err != nil {
		return backupError(ctx, opts.output, err)
	}
	rep, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaFlags: opts.replica}, prog)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	// No volume may still be a bucket: DTR's settings say.
	vol, noVolume := imagevolume.Of(rep)
	if noVolume != nil {
		var ext *imagevolume.ExternalStorageError
		if !errors.As(noVolume, &ext) {
			return backupError(ctx, opts.output, noVolume)
		}
		if vol, err = imagevolume.WithoutVolume(rep); err != nil {
			return backupError(ctx, opts.output, err)
		}
	}
	vol.AgentBinary = opts.replica.agentBinary
	m, err := imagebackup.Write(ctx, dockerCli.Client(), out, imagebackup.Options{
		Replica: rep, Volume: vol, Since: since, AgentBinary: opts.replica.agentBinary, Progress: prog,
		NoVolume: noVolume,
	})
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	if err := commitImages(out, opts.output, opts.enc.enabled(), m); err != nil {
		return err
	}
	where := "volume " + m.Volume
	if m.Storage != "" {
		where = m.Storage
	}
	summary := fmt.Sprintf("%s: DTR %s, replica %s, %s: %d files, %d blobs, %s%s",
		displayOutput(opts.output), m.DTRVersion, m.ReplicaID, where, m.Files, m.Blobs, human.Bytes(m.Bytes), opts.enc.describe())
	if len(m.DependsOn) > 0 {
		summary += fmt.Sprintf("; incremental: %d more blobs, %s, held by %s (%s)", m.OmittedBlobs, human.Bytes(m.OmittedBytes), human.Plural(len(m.DependsOn), "earlier backup"), dependencyNames(m.DependsOn))
	} else if since != nil {
		summary += "; a full backup: the earlier backups hold none of its blobs"
	}
	if opts.enc.enabled() && opts.output != "-" {
		summary += "; index " + imagearchive.IndexPath(opts.output)
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

// commitImages puts the backup in place; an encrypted one to a file with
// its plain index beside it (FILE.index), which lets a later --since,
// without the secret, know the blobs it holds.
func commitImages(out *backupOutput, output string, encrypted bool, m *imagearchive.Manifest) error {
	if !encrypted || output == "-" {
		return out.Commit()
	}
	x, err := imagearchive.CreateIndex(output, m.Index())
	if err != nil {
		return err
	}
	defer x.Abort()
	return x.CommitWith(out.Commit)
}

// storageReader reads DTR's storage configuration through a database
// helper of its own on the replica's node; its lines come whole, once it
// is done, among the volume's.
func storageReader(dockerCli command.Cli, rep *dtr.Replica, agentBinary string, prog *progress.Printer) func(context.Context) (dtrstorage.Backend, error) {
	return func(ctx context.Context) (dtrstorage.Backend, error) {
		held, release := prog.Held()
		defer release()
		return dtrdb.ReadStorage(ctx, dockerCli, rep, agentBinary, held)
	}
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
