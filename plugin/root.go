// Package plugin holds the cobra commands of `docker dtr`, one file per
// command: an options struct, the command, and its run function.
package plugin

import (
	"fmt"

	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker/cli/cli-plugins/plugin"
	"github.com/docker/cli/cli/command"
	cliflags "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"
)

// NewRootCmd returns the `dtr` command. name is "dtr" when run by the
// Docker CLI, or the executable's name when run standalone.
func NewRootCmd(name string, isPlugin bool, dockerCli command.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   name,
		Short: "Back up, verify and restore Docker Trusted Registry",
		Long: `Back up, verify and restore Docker Trusted Registry (DTR / Mirantis Secure Registry 2.x).

Backups are plain tar archives laid out like DTR's own, with table
definitions and a manifest of SHA-256 checksums that 'backup verify' checks.

Exit status: 0 success; 1 failure; 2 wrong usage (an unknown command or
flag, a missing argument or required flag, a flag's value out of range or
of the wrong form, flags that contradict each other, an unknown --format);
3 a restore failed and left its target partly restored, to finish by hand; 130 interrupted (SIGINT, SIGTERM), with what
was half done removed or put back. Each command's help says what its codes
mean.`,
		SilenceUsage:     true,
		SilenceErrors:    true,
		TraverseChildren: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if isPlugin {
				return plugin.PersistentPreRunE(cmd, args)
			}
			if dcli, ok := dockerCli.(*command.DockerCli); ok {
				return dcli.Initialize(cliflags.NewClientOptions())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(cmd, fmt.Sprintf("unknown command %q", args[0]))
			}
			return cmd.Help()
		},
		Args: cobra.ArbitraryArgs,
	}
	cmd.CompletionOptions.HiddenDefaultCmd = true
	cmd.AddCommand(newBackupCmd(dockerCli), newStatusCmd(dockerCli), newRepairCmd(dockerCli), newVersionCmd(dockerCli), newAgentCmd())
	visitAll(cmd, func(c *cobra.Command) {
		// "[OPTIONS]" is in each Use line already, as docker's own commands have it.
		c.DisableFlagsInUseLine = true
		c.SetFlagErrorFunc(flagError)
		withExitStatus(c)
	})
	registerCompletions(cmd, dockerCli)
	return cmd
}

func visitAll(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		visitAll(c, fn)
	}
}

// usageError is a wrong invocation that cobra reports before RunE (an
// unknown flag, a missing argument): exit status 2, with a pointer to the
// help.
func usageError(cmd *cobra.Command, msg string) error {
	return exitStatus(nil, exitcode.UsageError(fmt.Errorf("%s\nSee '%s --help'.", msg, cmd.CommandPath())))
}

func flagError(cmd *cobra.Command, err error) error {
	return usageError(cmd, err.Error())
}

// exactArgs wants n arguments, naming them in the error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError(cmd, fmt.Sprintf("%q requires %s", cmd.CommandPath(), what))
		}
		return nil
	}
}

// noArgs refuses arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(cmd, fmt.Sprintf("%q accepts no arguments, got %q", cmd.CommandPath(), args[0]))
	}
	return nil
}
