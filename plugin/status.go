package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/nodejournal"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

type statusOptions struct {
	format string
}

func newStatusCmd(dockerCli command.Cli) *cobra.Command {
	var opts statusOptions
	cmd := &cobra.Command{
		Use:   "status [OPTIONS]",
		Short: "Show the DTR replicas behind the Docker context and their health",
		Long: `Show the DTR replicas behind the active Docker context: each replica's
node, version and containers (state and health check), whether a majority
of replicas is healthy, and which replica a backup will use. Where DTR
keeps its images comes from DTR's own settings (the registry's storage
configuration in dtr2.properties), read through a short-lived database
helper on the backup replica's node: the driver, bucket or container,
region, endpoint and root, never a credential; "unknown" when the settings
hold none, and the reason when they cannot be read.

An unfinished restore (one whose journal is still on a replica's node: it
was killed, or left by hand) is a problem: status names it, says which
command finishes it (backup restore --resume) or undoes it (--undo), and
exits 1.

Exit status: 0 when a majority (n/2+1) of replicas is healthy and no
restore is unfinished, 1 when the majority is lost, a restore is
unfinished, or no DTR is found, 2 for a usage error.`,
		Example: `  docker dtr status
  docker --context other-cluster dtr status --format json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), dockerCli, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "", `Output format: "json", or empty for tables`)
	return cmd
}

// statusReport is what status prints, and its JSON.
type statusReport struct {
	Context       string         `json:"context"`
	Quorum        dtr.Quorum     `json:"quorum"`
	BackupReplica string         `json:"backupReplica,omitempty"`
	VersionSkew   string         `json:"versionSkew,omitempty"`
	Replicas      []*dtr.Replica `json:"replicas"`
	// Unfinished are the restores whose journal is on the cluster.
	Unfinished []unfinished `json:"unfinishedRestores"`
	// Storage is where DTR's settings say its images are kept, read
	// through the backup replica's database; nil without one.
	Storage *storageStatus `json:"storage,omitempty"`
}

// storageStatus is DTR's storage configuration as status shows it: never
// a credential.
type storageStatus struct {
	dtrstorage.Backend
	// ReadFrom is the replica whose database was asked.
	ReadFrom string `json:"readFrom"`
	// Error says why the settings could not be read.
	Error string `json:"error,omitempty"`
}

func runStatus(ctx context.Context, dockerCli command.Cli, opts statusOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	cluster, err := dtrdb.Discover(ctx, dockerCli)
	if err != nil {
		return err
	}
	st := statusReport{
		Context:     dockerCli.CurrentContext(),
		Quorum:      cluster.Quorum(),
		VersionSkew: cluster.VersionSkew(),
		Replicas:    cluster.Replicas,
	}
	if rep, err := cluster.Choose(""); err == nil {
		st.BackupReplica = rep.ID
		b, err := dtrdb.ReadStorage(ctx, dockerCli, rep, "", nil)
		st.Storage = &storageStatus{Backend: b, ReadFrom: rep.ID}
		if err != nil {
			st.Storage.Error = err.Error()
		}
	}
	found, err := nodejournal.List(ctx, dockerCli.Client())
	if err != nil {
		return err
	}
	st.Unfinished = []unfinished{}
	for _, f := range found {
		st.Unfinished = append(st.Unfinished, describeJournal(dockerCli, &targetOptions{}, f.Record, "container "+f.Container))
	}
	if opts.format == "json" {
		if err := writeJSON(dockerCli, st); err != nil {
			return err
		}
	} else {
		printStatus(dockerCli.Out(), st)
	}
	var problems []string
	if !st.Quorum.OK {
		problems = append(problems, fmt.Sprintf("DTR has lost its majority: %d of %d replicas healthy, it needs %d", st.Quorum.Healthy, st.Quorum.Replicas, st.Quorum.Needed))
	}
	for _, u := range st.Unfinished {
		problems = append(problems, u.String())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; and "))
	}
	return nil
}

func printStatus(w io.Writer, st statusReport) {
	q := st.Quorum
	verdict := "OK"
	if !q.OK {
		verdict = "MAJORITY LOST"
	}
	fmt.Fprintf(w, "DTR behind Docker context %q: %d of %d replicas healthy, a majority needs %d: %s\n",
		st.Context, q.Healthy, q.Replicas, q.Needed, verdict)
	if st.VersionSkew != "" {
		fmt.Fprintf(w, "warning: %s\n", st.VersionSkew)
	}
	if st.BackupReplica != "" {
		fmt.Fprintf(w, "Backups use replica %s (the healthy replica with the lowest id; --replica-id chooses another).\n", st.BackupReplica)
	} else {
		fmt.Fprintln(w, "No replica is healthy: backups are refused.")
	}
	if s := st.Storage; s != nil {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "Image storage: DTR's settings could not be read (%s).\n", s.Error)
		case !s.Known():
			fmt.Fprintf(w, "Image storage: unknown (%s).\n", s.Unknown)
		case s.External():
			fmt.Fprintf(w, "Image storage: %s (DTR's setting %s): not in the replicas' volumes; backup images refuses it.\n", s.Backend, s.Setting)
		default:
			fmt.Fprintf(w, "Image storage: %s (DTR's setting %s): each replica's volume below.\n", s.Backend, s.Setting)
		}
	}
	for _, u := range st.Unfinished {
		fmt.Fprintf(w, "UNFINISHED RESTORE: %s\n", u)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tNODE\tVERSION\tHEALTHY\tIMAGE STORAGE")
	for _, r := range st.Replicas {
		healthy := "yes"
		if !r.Healthy {
			healthy = "no: " + strings.Join(r.Problems, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, dash(r.Node), dash(r.Version), healthy, storage(r, st.Storage))
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tCOMPONENT\tSTATE\tHEALTH CHECK\tVERSION\tIMAGE")
	for _, r := range st.Replicas {
		for _, c := range r.Containers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, c.Component, c.State, dash(c.Health), dash(c.Version), c.Image)
		}
	}
	tw.Flush()
}

// storage says where a replica's registry keeps image content: its
// mount, unless DTR's settings say the images are elsewhere.
func storage(r *dtr.Replica, s *storageStatus) string {
	m := r.ImageStorage
	switch {
	case r.Container("registry") == nil:
		return "- (no registry container)"
	case s != nil && s.Error == "" && s.External():
		return "not used (images in " + s.Driver + ")"
	case m == nil:
		return "external (no volume at /storage: S3, Azure, GCS or Swift)"
	case m.Type == "bind":
		return "host directory " + m.Source
	}
	return fmt.Sprintf("volume %s (%s)", m.Name, m.Driver)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
