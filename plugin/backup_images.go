package plugin

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/version"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type imagesOptions struct {
	output            string
	replicaID         string
	allowCorruptBlobs bool
	quiet             bool
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
never started: nothing runs on the node, no ssh or sudo is needed. The
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
holds no secret. verify, inspect and restore decrypt it themselves.`,
		Example: `  docker dtr backup images -o backup-images.tar
  docker dtr backup images --recipient-file backup-key.asc -o backup-images.tar.gpg
  docker dtr backup images --replica-id 0123456789ab -o - | aws s3 cp - s3://bucket/backup-images.tar`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImages(cmd.Context(), dockerCli, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&opts.output, "output", "o", "", `Write the archive to this file ("-" for standard output)`)
	flags.StringVar(&opts.replicaID, "replica-id", "", "Replica to use (default: the healthy replica with the lowest id)")
	flags.BoolVar(&opts.allowCorruptBlobs, "allow-corrupt-blobs", false, "Exit 0 even when blobs in the registry do not match their digests")
	flags.BoolVarP(&opts.quiet, "quiet", "q", false, "Print no progress")
	opts.enc.addFlags(flags)
	return cmd
}

func runImages(ctx context.Context, dockerCli command.Cli, opts imagesOptions) error {
	if err := checkOutput(dockerCli, opts.output); err != nil {
		return err
	}
	if err := checkReplicaID(opts.replicaID); err != nil {
		return err
	}
	out, err := openBackup(dockerCli, opts.output, &opts.enc)
	if err != nil {
		return err
	}
	defer out.Abort()
	ctx, stop := withSignals(ctx)
	defer stop()
	prog := progress.New(dockerCli.Err(), opts.quiet)
	rep, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaID: opts.replicaID}, prog)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	vol, err := imagevolume.Of(rep)
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	prog.Step("reading volume %s (%s) through a helper container on node %s", vol.Name, vol.Driver, rep.Node)
	info := imagearchive.Info{
		Tool: version.Tool(), DTRVersion: rep.Version, ReplicaID: rep.ID, Node: rep.Node,
		Volume: vol.Name, VolumeDriver: vol.Driver, Started: time.Now(),
	}
	var m *imagearchive.Manifest
	err = vol.Read(ctx, dockerCli.Client(), func(r io.Reader) error {
		m, err = imagearchive.Write(out, r, info, func(t imagearchive.Totals) {
			prog.Step("%d files, %s so far", t.Files, archive.HumanBytes(t.Bytes))
		})
		return err
	})
	if err != nil {
		return backupError(ctx, opts.output, err)
	}
	if err := out.Commit(); err != nil {
		return err
	}
	summary := fmt.Sprintf("%s: DTR %s, replica %s, volume %s: %d files, %d blobs, %s%s",
		displayOutput(opts.output), m.DTRVersion, m.ReplicaID, m.Volume, m.Files, m.Blobs, archive.HumanBytes(m.Bytes), opts.enc.describe())
	if m.UploadFiles > 0 {
		summary += fmt.Sprintf(" (%s in unfinished uploads left out)", plural(int(m.UploadFiles), "file"))
	}
	out.summary(dockerCli, prog, "%s", summary)
	if n := len(m.CorruptBlobs); n > 0 {
		for _, b := range m.CorruptBlobs {
			prog.Warn("corrupt in the registry (data does not match its digest): %s", b)
		}
		if !opts.allowCorruptBlobs {
			return cli.StatusError{StatusCode: 1, Status: fmt.Sprintf(
				"the backup is complete, but %s in the live registry do not match their digests (listed above): repair them, or pass --allow-corrupt-blobs", plural(n, "blob"))}
		}
	}
	return nil
}

// chooseReplica finds the DTR behind the Docker context and picks the
// replica, printing which and why.
func chooseReplica(ctx context.Context, dockerCli command.Cli, o *targetOptions, prog *progress.Printer) (*dtr.Replica, error) {
	t, err := o.locate(ctx, dockerCli, prog)
	if err != nil {
		return nil, err
	}
	return t.replica, nil
}
