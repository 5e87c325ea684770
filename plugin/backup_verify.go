package plugin

import (
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type verifyOptions struct {
	file   string
	format string
}

func newVerifyCmd(dockerCli command.Cli) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [OPTIONS] FILE",
		Short: "Check a backup completely: structure, every document, every checksum",
		Long: `Check a backup completely: structure, every document, every checksum.

Exit status: 0 the backup is valid, 1 it is not (every problem is listed),
2 wrong usage. FILE may be "-" for standard input. Backups written by
'docker/dtr backup' have no manifest: their structure and documents are
checked, their completeness cannot be.`,
		Example: `  docker dtr backup verify backup-metadata.tar
  gpg -d backup-metadata.tar.gpg | docker dtr backup verify -`,
		Args: exactArgs(1, "a backup FILE (or - for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runVerify(dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	return cmd
}

func runVerify(dockerCli command.Cli, opts verifyOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	return reportArchive(dockerCli, opts.file, opts.format, archive.Verify)
}
