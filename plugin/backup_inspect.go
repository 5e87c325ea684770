package plugin

import (
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/verify"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type inspectOptions struct {
	file   string
	format string
	dec    decryptOptions
}

func newInspectCmd(dockerCli command.Cli) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] FILE",
		Short: "Show what a backup holds, from its manifest, without reading it all",
		Long: `Show what a backup holds, from its manifest, without reading it all.

` + compressedHelp + `A compressed or encrypted one is read whole to its manifest, its last entry.

Exit status: 0 shown; 1 FILE cannot be read or decrypted, or is not a
backup; 2 wrong usage.`,
		Example: `  docker dtr backup inspect backup-metadata.tar
  docker dtr backup inspect --format json backup-metadata.tar`,
		Args: exactArgs(1, "a backup FILE (or - for standard input)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return runInspect(dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `Output format: "json", or empty for a summary`)
	opts.dec.addFlags(cmd.Flags())
	return cmd
}

func runInspect(dockerCli command.Cli, opts inspectOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	return reportArchive(dockerCli, progress.New(dockerCli.Err(), false), opts.file, opts.format, verify.Options{}, opts.dec)
}
