package plugin

import (
	"os"

	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/spf13/cobra"
)

type agentOptions struct {
	connect string
}

// newAgentCmd is what runs inside the tunnel helper container: it relays
// streams multiplexed on its stdin and stdout to RethinkDB. Hidden: users
// never run it.
func newAgentCmd() *cobra.Command {
	var opts agentOptions
	cmd := &cobra.Command{
		Use:    "agent --connect HOST:PORT",
		Short:  "Relay the plugin's streams to RethinkDB (runs in the helper container)",
		Hidden: true,
		Args:   noArgs,
		// The helper has no Docker CLI configuration to load.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(opts)
		},
	}
	cmd.Flags().StringVar(&opts.connect, "connect", "", "Address to relay streams to")
	cmd.MarkFlagRequired("connect")
	return cmd
}

func runAgent(opts agentOptions) error {
	return tunnel.ServeStdio(os.Stdin, os.Stdout, opts.connect, os.Stderr)
}
