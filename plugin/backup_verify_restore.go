package plugin

import (
	"context"
	"errors"
	"fmt"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker-dtr/docker-dtr/pkg/restoretest"
	"github.com/docker/cli/cli/command"
)

// serverReady bounds the wait for the throw-away server to answer.
const serverReady = 2 * time.Minute

// runRestoreTest is verify --restore-test: the metadata backup verified,
// then restored into a throw-away RethinkDB on a replica's node
// (pkg/restoretest) through the restore engine, which checks every row's
// key, index and write hook; the server is removed on every path.
func runRestoreTest(ctx context.Context, dockerCli command.Cli, opts verifyOptions, prog *progress.Printer) error {
	if opts.metadata != "" || opts.from != "" {
		return exitcode.UsageError(errors.New("--restore-test restores a metadata backup: --metadata and --from are for image backups"))
	}
	ctx, stop := withSignals(ctx)
	defer stop()
	in, name, images, err := openRestorable(dockerCli, opts.file, opts.dec, prog)
	if err != nil {
		return err
	}
	defer in.Close()
	if images {
		return exitcode.UsageError(fmt.Errorf("--restore-test: %s is an image backup; the flag restores metadata backups (verify checks every blob of an image backup against its digest)", name))
	}
	// The replica whose image and node the server takes, found while the
	// backup verifies; a backup that does not verify starts nothing.
	held, release := prog.Held()
	type found struct {
		rep *dtr.Replica
		err error
	}
	ch := make(chan found, 1)
	go func() {
		rep, err := chooseReplica(ctx, dockerCli, &targetOptions{replicaFlags: opts.replica}, held)
		ch <- found{rep, err}
	}()
	rep, err := restore.VerifyMetadata(in, name, prog)
	f := <-ch
	if err != nil {
		return refused(dockerCli, err)
	}
	release()
	if f.err != nil {
		return f.err
	}
	replica := f.rep
	if err := restore.CheckVersion(name, rep.DTRVersion, replica.Version, false, prog.Warn); err != nil {
		return fmt.Errorf("%s does not restore into replica %s: %w", name, replica.ID, err)
	}
	res, err := restoretest.Run(ctx, restoretest.Options{
		API: dockerCli.Client(), Replica: replica, Log: prog.Step,
		Restore: func(ctx context.Context, server *dtr.Replica) ([]metadata.TableResult, error) {
			tgt := dtrdb.On(dockerCli, server, opts.replica.agentBinary, prog)
			defer tgt.Close()
			if err := tgt.Connect(ctx, 5); err != nil {
				return nil, err
			}
			if err := waitServer(ctx, tgt); err != nil {
				return nil, err
			}
			t := &restore.Metadata{
				Name: name, Backup: in, Report: rep, Where: "the throw-away RethinkDB", DB: tgt,
				Version: replica.Version, ReplicaID: replica.ID, Writers: 4, Progress: prog, Stderr: dockerCli.Err(),
			}
			if err := restore.PlanMetadata(ctx, t, "", opts.file, true); err != nil {
				return nil, err
			}
			if err := restore.Run(ctx, t, restore.Options{Force: true, Log: prog.Step, Warn: prog.Warn}); err != nil {
				return nil, err
			}
			return t.Results, nil
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("restore test of %s interrupted: %w", name, err)
		}
		return fmt.Errorf("%s does not restore: %w", name, err)
	}
	if opts.format == "json" {
		return writeJSON(dockerCli, struct {
			File string `json:"file"`
			*restoretest.Result
			RestoreSeconds float64           `json:"restoreSeconds"`
			Outdated       *archive.Outdated `json:"outdated,omitempty"`
		}{name, res, res.Restore.Seconds(), rep.Outdated})
	}
	if o := rep.Outdated; o != nil {
		fmt.Fprintf(dockerCli.Out(), "%s: OUTDATED backup: %s\n", name, restore.OutdatedLine(o))
	}
	fmt.Fprintf(dockerCli.Out(), "%s: restores: %s, %d rows, every primary key present, every index ready and write hook set, in %s (into a throw-away RethinkDB from replica %s's image on node %s, removed)\n",
		name, human.Plural(len(res.Tables), "table"), res.Rows, res.Restore.Round(100*time.Millisecond), res.Replica, res.Node)
	return nil
}

// waitServer waits until the server answers the helper, within
// serverReady: it has just started.
func waitServer(ctx context.Context, tgt *dtrdb.Target) error {
	ctx, cancel := context.WithTimeout(ctx, serverReady)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := tgt.Health(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the throw-away RethinkDB did not answer within %s: %w", serverReady, err)
		case <-time.After(wait):
		}
	}
}
