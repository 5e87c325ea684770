package plugin

import (
	"context"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type verifyOptions struct {
	file     string
	format   string
	metadata string
	from     string
	dec      decryptOptions
	progress progressOptions
	// restoreTest restores a metadata backup into a throw-away RethinkDB.
	restoreTest bool
	replica     replicaFlags
}

func newVerifyCmd(dockerCli command.Cli) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [OPTIONS] FILE",
		Short: "Check a backup completely: structure, every document, every checksum",
		Long: `Check a backup completely: structure, every document, every checksum.

FILE may be "-" for standard input. Backups written by
'docker/dtr backup' have no manifest: their structure and documents are
checked, their completeness cannot be.

Image backups (docker dtr backup images) are recognised: every file's
SHA-256 is checked against the manifest and every blob against its digest.
With --metadata FILE, every layer and manifest digest that the metadata
backup's manifests, blobs and tags tables reference must be in the image
backup; what is missing is listed with the repository:tag that needs it,
and blobs nothing references are counted.

An incremental image backup (backup images --since) is verified with its
chain: every earlier backup it depends on must be found, by the hash of its
manifest, in --from DIR (default: FILE's directory, whatever the file names
now), and must list with their bytes, of the same size and SHA-256, the
blobs it is said to hold. The earlier backups' contents are not read: verify
each of them to check their bytes.

Encrypted backups (--encrypt, 'gpg -c', 'gpg -e', armored or not) are
read with the passphrase from --passphrase-file, $DTR_BACKUP_PASSPHRASE or
the terminal, or the secret key of --identity-file. A backup of either
kind is checked as it is decrypted, and no plaintext reaches a file.
Nothing decrypted counts before the message's own integrity check, at its
end, has passed. A wrong passphrase, a modified file and a cut one each
get their own error.

With --restore-test, a metadata backup is also restored, the only full
test of a backup: into a throw-away RethinkDB started from the replica's
own dtr-rethinkdb image on its node (the healthy replica with the lowest
id, or --replica-id), with anonymous volumes and no network of its own
but its loopback, no port published, labelled as a helper. The restore
engine loads it and checks every table's rows and primary keys, builds
every secondary index and sets every write hook; the time it took is the
estimate of a real restore's. The server and its volumes are removed on
every path (one left by a killed run is removed by the next). No DTR
container is stopped or touched. It works for encrypted backups and for
'docker/dtr backup' archives.

` + compressedHelp + `
Exit status: 0 the backup is valid (and, with --restore-test, restores);
1 it is not (every problem is listed), cannot be read or decrypted, lacks
blobs that --metadata references, or does not restore (the reason is
given); 2 wrong usage.`,
		Example: `  docker dtr backup verify backup-metadata.tar
  docker dtr backup verify --restore-test backup-metadata.tar
  docker dtr backup verify backup-images.tar --metadata backup-metadata.tar
  docker dtr backup verify backup-images-monday.tar --from /backups/images
  docker dtr backup verify --passphrase-file /root/.dtr-backup-pass backup-metadata.tar.gpg
  docker dtr backup verify --identity-file backup-secret-key.asc backup-images.tar.gpg`,
		Args: exactArgs(1, "a backup FILE (or - for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runVerify(cmd.Context(), dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	cmd.Flags().StringVar(&opts.metadata, "metadata", "", "With an image backup: a metadata backup whose referenced blobs must all be in it")
	cmd.Flags().StringVar(&opts.from, "from", "", "With an incremental image backup: the directory of the earlier backups it depends on (default: FILE's directory)")
	cmd.Flags().BoolVar(&opts.restoreTest, "restore-test", false, "With a metadata backup: restore it into a throw-away RethinkDB on a replica's node, then remove it")
	opts.replica.addFlags(cmd.Flags())
	opts.dec.addFlags(cmd.Flags())
	opts.progress.addFlags(cmd.Flags())
	return cmd
}

func runVerify(ctx context.Context, dockerCli command.Cli, opts verifyOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	if err := opts.replica.validate(opts.restoreTest); err != nil {
		return err
	}
	prog := opts.progress.printer(ctx, dockerCli)
	defer prog.Close()
	if opts.restoreTest {
		return runRestoreTest(ctx, dockerCli, opts, prog)
	}
	return reportArchive(dockerCli, prog, opts.file, opts.format, verify.Options{Full: true, Metadata: opts.metadata, ChainDir: imagearchive.ChainDir(opts.file, opts.from), Index: verifyIndex(opts.file)}, opts.dec)
}

// verifyIndex is where FILE's index would be: none for standard input.
func verifyIndex(file string) string {
	if file == "-" {
		return ""
	}
	return imagearchive.IndexPath(file)
}
