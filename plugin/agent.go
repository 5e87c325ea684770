package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/spf13/cobra"
)

type agentOptions struct {
	connect string
	wipe    string
	du      string
}

// newAgentCmd is what runs inside the plugin's helper containers: with
// --connect it relays streams multiplexed on its stdin and stdout to
// RethinkDB (the tunnel); with --wipe it empties the image volume mounted
// at /storage (a failed image restore put back); with --du it prints, as one
// line of JSON, what the image volume holds (an image backup's progress
// total). Hidden: users never run it.
func newAgentCmd() *cobra.Command {
	var opts agentOptions
	cmd := &cobra.Command{
		Use:    "agent (--connect HOST:PORT | --wipe /storage | --du DIR)",
		Short:  "Relay the plugin's streams to RethinkDB, or empty or measure an image volume (runs in a helper container)",
		Hidden: true,
		Args:   noArgs,
		// The helper has no Docker CLI configuration to load.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(opts, os.Stdout)
		},
	}
	cmd.Flags().StringVar(&opts.connect, "connect", "", "Address to relay streams to")
	cmd.Flags().StringVar(&opts.du, "du", "", "Print what this directory holds as one line of JSON (files and bytes), following no link")
	cmd.Flags().StringVar(&opts.wipe, "wipe", "", "Remove everything inside this directory (only "+imagevolume.MountPoint+", the image volume's mount point in the helper)")
	return cmd
}

func runAgent(opts agentOptions, stdout io.Writer) error {
	n := 0
	for _, set := range []string{opts.connect, opts.wipe, opts.du} {
		if set != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.New("agent: give exactly one of --connect, --wipe and --du")
	case opts.wipe != "":
		return wipe(opts.wipe, stdout)
	case opts.du != "":
		u, err := agent.DU(opts.du)
		if err != nil {
			return fmt.Errorf("agent: --du %s: %w", opts.du, err)
		}
		return json.NewEncoder(stdout).Encode(u)
	default:
		return tunnel.ServeStdio(os.Stdin, os.Stdout, opts.connect, os.Stderr)
	}
}

// wipe empties the image volume's mount point, and nothing else: a wrong
// argument must not empty the helper's root file system.
func wipe(dir string, stdout io.Writer) error {
	if path.Clean(dir) != imagevolume.MountPoint {
		return fmt.Errorf("agent: --wipe %s: refusing, only %s (the image volume's mount point in a helper) is emptied", dir, imagevolume.MountPoint)
	}
	n, err := agent.Wipe(imagevolume.MountPoint)
	if err != nil {
		return fmt.Errorf("agent: emptying %s: %w", imagevolume.MountPoint, err)
	}
	fmt.Fprintf(stdout, "emptied %s: removed %d entries\n", imagevolume.MountPoint, n)
	return nil
}
