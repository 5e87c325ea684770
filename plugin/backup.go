package plugin

import (
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

func newBackupCmd(dockerCli command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Create, verify, inspect and restore DTR backups",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newCreateCmd(dockerCli),
		newImagesCmd(dockerCli),
		newVerifyCmd(dockerCli),
		newInspectCmd(dockerCli),
		newRestoreCmd(dockerCli),
		newPruneCmd(dockerCli),
	)
	return cmd
}
