package plugin

import (
	"os"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/spf13/cobra"
)

type agentOptions struct {
	db      string
	wipe    string
	du      string
	send    string
	receive string
	bucket  string
	lease   bool
	// noListing: --send without its listing (the plugin's list first).
	noListing bool
}

// newAgentCmd is what runs inside the plugin's helper containers: with
// --db it does a command's database work next
// to that RethinkDB, as requests on its stdin say (the dump of backup
// create, the plan, safety backup, load and undo of a restore); with --wipe it empties the image volume mounted
// at /storage (a failed image restore put back); with --du it prints, as one
// line of JSON, what the image volume holds (an image backup's progress
// total); with --send it lists the image volume and
// sends a tar of what an incremental backup lacks; with --bucket those
// work on DTR's S3 bucket as the storage settings in the RethinkDB at
// that address give it, and --receive writes a tar into it; with --lease it only lives as long as the plugin's connection (a
// helper whose mounts the plugin reads). The database work and the lease exit once
// the plugin is gone. Hidden: users never run it.
func newAgentCmd() *cobra.Command {
	var opts agentOptions
	cmd := &cobra.Command{
		Use:    "agent (--db HOST:PORT | [--bucket HOST:PORT] (--wipe /storage | --du DIR | --send DIR [--no-listing] | --receive /storage) | --lease)",
		Short:  "Do the plugin's database work next to RethinkDB, or read, empty or measure an image volume (runs in a helper container)",
		Hidden: true,
		Args:   noArgs,
		// The helper has no Docker CLI configuration to load.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(opts)
		},
	}
	cmd.Flags().StringVar(&opts.db, "db", "", "Work on the RethinkDB at this address with DTR's client certificate from /ca, as the requests on standard input say, answering on standard output")
	cmd.Flags().StringVar(&opts.du, "du", "", "Print what this directory holds as one line of JSON (files and bytes), following no link")
	cmd.Flags().StringVar(&opts.send, "send", "", "List this directory, then send it as a tar without the files named on standard input (an incremental image backup)")
	cmd.Flags().BoolVar(&opts.noListing, "no-listing", false, "With --send: read the files to leave out first, then send the tar in one walk, those files as headers without data, with no listing")
	cmd.Flags().StringVar(&opts.bucket, "bucket", "", "Work on DTR's S3 bucket instead of the directory, opened with the storage settings read from the RethinkDB at this address")
	cmd.Flags().StringVar(&opts.receive, "receive", "", "With --bucket: write the tar on standard input into the bucket (only "+imagevolume.MountPoint+")")
	cmd.Flags().BoolVar(&opts.lease, "lease", false, "Read standard input until it ends or stays silent, then exit")
	cmd.Flags().StringVar(&opts.wipe, "wipe", "", "Remove everything inside this directory (only "+imagevolume.MountPoint+", the image volume's mount point in the helper)")
	return cmd
}

func runAgent(opts agentOptions) error {
	return agent.Run(agent.Options{DB: opts.db, Wipe: opts.wipe, DU: opts.du, Send: opts.send, NoListing: opts.noListing, Receive: opts.receive, Bucket: opts.bucket, Lease: opts.lease, WipeOnly: imagevolume.MountPoint}, os.Stdin, os.Stdout, os.Stderr)
}
