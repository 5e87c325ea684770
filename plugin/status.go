package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/human"
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
of replicas is healthy, and which replica a backup will use.

RethinkDB is asked too, through a short-lived database helper on the
backup replica's node (within 15 s; where that server sees no majority,
the other replicas' servers are asked, and the widest view is shown): the
servers it sees connected, each table's readiness (table_status) and its
current_issues. A replica whose containers run but whose server the
cluster does not see, or whose tables cannot take writes, is not healthy:
containers can all run while the database has lost its majority. When no
server can be asked, status says so and judges by the containers only.

Where DTR keeps its images comes from DTR's own settings (the registry's
storage configuration in dtr2.properties), read through the same helper:
the driver, bucket or container, region, endpoint and root, never a
credential; "unknown" when the settings hold none, and the reason when
they cannot be read.

An unfinished restore (one whose journal is still on a replica's node: it
was killed, or left by hand) is a problem: status names it, says which
command finishes it (backup restore --resume) or undoes it (--undo), and
exits 1.

Exit status: 0 when a majority (n/2+1) of replicas is healthy and no
restore is unfinished, 1 when the majority is lost (MAJORITY LOST: the
tables that cannot take writes are named), RethinkDB could not be asked,
a restore is unfinished, or no DTR is found, 2 for a usage error.`,
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
	// through the database that answered; nil without one.
	Storage *storageStatus `json:"storage,omitempty"`
	// Database is RethinkDB's own view of the cluster.
	Database databaseStatus `json:"database"`
}

// databaseStatus is the view of the RethinkDB server that answered
// (dbhealth.Survey), or why none did.
type databaseStatus struct {
	*dbhealth.Health
	// ReadFrom is the replica whose server answered.
	ReadFrom string `json:"readFrom,omitempty"`
	// ServersConnected counts the replicas whose servers it sees.
	ServersConnected int `json:"serversConnected"`
	// Error says why no server could be asked: the replicas are then
	// judged by their containers only.
	Error string `json:"error,omitempty"`
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
	backup, err := cluster.Choose("")
	if err == nil {
		st.BackupReplica = backup.ID
	} else {
		backup = nil
	}
	// The database's view: a replica whose containers run but whose
	// server the cluster does not see, or whose tables take no writes, is
	// not healthy.
	health, from, read, err := dtrdb.Survey(ctx, dockerCli, backup, cluster.Replicas, "")
	if err != nil {
		st.Database.Error = err.Error()
	} else {
		st.Database = databaseStatus{Health: health, ReadFrom: from.ID, ServersConnected: health.Sees(cluster.Replicas)}
		health.Mark(cluster.Replicas)
		st.Quorum = cluster.Quorum()
		// A replica the database no longer counts (an emergency repair
		// left it) is no backup's: the next healthy one is.
		if backup != nil && backup.Removed != "" {
			st.BackupReplica = ""
			if b, err := cluster.Choose(""); err == nil {
				st.BackupReplica = b.ID
			}
		}
		s := read[from.ID]
		st.Storage = &storageStatus{Backend: s.Storage, ReadFrom: from.ID}
		if s.StorageErr != nil {
			st.Storage.Error = s.StorageErr.Error()
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
		msg := fmt.Sprintf("DTR has lost its majority: %d of %d replicas healthy, it needs %d", st.Quorum.Healthy, st.Quorum.Replicas, st.Quorum.Needed)
		if db := st.Database; db.Health != nil {
			msg += fmt.Sprintf(" (RethinkDB sees %d of %d servers", db.ServersConnected, st.Quorum.Replicas)
			if u := db.Unwritable(); len(u) > 0 {
				msg += fmt.Sprintf("; %s cannot take writes", human.List(tableNames(u), 3))
			}
			msg += ")"
		}
		problems = append(problems, msg)
	}
	if st.Database.Error != "" {
		problems = append(problems, "RethinkDB could not be asked, so its health is unknown: "+oneLine(st.Database.Error))
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
	printDatabase(w, st)
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

func tableNames(ts []dbhealth.Table) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.String())
	}
	return out
}

// printDatabase says what RethinkDB itself says of the cluster: the
// servers it sees, the tables that cannot take writes, its issues.
func printDatabase(w io.Writer, st statusReport) {
	db := st.Database
	if db.Health == nil {
		fmt.Fprintf(w, "Database: RethinkDB could not be asked (%s): the replicas are judged by their containers only.\n", oneLine(db.Error))
		return
	}
	fmt.Fprintf(w, "Database: RethinkDB server %s (replica %s) sees %d of %d replicas' servers connected", db.Server, db.ReadFrom, db.ServersConnected, st.Quorum.Replicas)
	if u := db.Unwritable(); len(u) > 0 {
		fmt.Fprintf(w, "; %d of %d tables cannot take writes: %s", len(u), len(db.Tables), human.List(tableNames(u), 5))
	} else {
		fmt.Fprintf(w, "; all %d tables take writes", len(db.Tables))
	}
	if len(db.Issues) == 0 {
		fmt.Fprintln(w, "; no issues.")
		return
	}
	fmt.Fprintf(w, "; %s:\n", human.Plural(len(db.Issues), "issue"))
	for _, i := range db.Issues {
		crit := ""
		if i.Critical {
			crit = " (critical)"
		}
		fmt.Fprintf(w, "  %s%s: %s\n", i.Type, crit, oneLine(i.Description))
	}
}
