package plugin

import (
	"context"
	"errors"
	"fmt"
	"github.com/docker-dtr/docker-dtr/pkg/exitcode"
	"io/fs"
	"os"
	"regexp"

	"github.com/docker-dtr/docker-dtr/pkg/dtrdb"
	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/pflag"
)

// targetOptions say which RethinkDB a command works on: a replica of the DTR
// behind the active Docker context (the default), or one reached directly
// with --rethinkdb-addr.
type targetOptions struct {
	replicaFlags
	direct rethinkOptions
	// allowUnhealthy takes a replica named by --replica-id even when it is
	// not healthy: its registry may be what is being repaired.
	allowUnhealthy bool
}

func (o *targetOptions) addFlags(flags *pflag.FlagSet) {
	o.replicaFlags.addFlags(flags)
	o.direct.addFlags(flags)
}

// replicaFlags choose the replica a command works on through the Docker
// context, and the agent binary it runs on that replica's node.
type replicaFlags struct {
	replicaID   string
	agentBinary string
}

func (o *replicaFlags) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&o.replicaID, "replica-id", "", "Replica to use (default: the healthy replica with the lowest id)")
	flags.StringVar(&o.agentBinary, "agent-binary", "", "Static linux build of docker-dtr to run on the replica's node, when this one cannot run there ('make cross')")
}

// validate checks the replica id's form and, when the agent will run
// (agent), that --agent-binary names a file.
func (o *replicaFlags) validate(agent bool) error {
	if o.replicaID != "" && !replicaIDRe.MatchString(o.replicaID) {
		return exitcode.UsageError(fmt.Errorf("--replica-id %q: a replica id is 12 lowercase hex characters, such as 0123456789ab", o.replicaID))
	}
	if agent && o.agentBinary != "" {
		if _, err := os.Stat(o.agentBinary); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("--agent-binary %s: no such file: build static linux binaries with 'make cross' (bin/docker-dtr-linux-<arch>)", o.agentBinary)
			}
			return fmt.Errorf("--agent-binary: %v", err)
		}
	}
	return nil
}

var replicaIDRe = regexp.MustCompile(`^[0-9a-f]{12}$`)

func (o *targetOptions) isDirect() bool { return o.direct.Addr != "" }

func (o *targetOptions) validate() error {
	if err := o.replicaFlags.validate(!o.isDirect()); err != nil {
		return err
	}
	if o.isDirect() {
		if o.agentBinary != "" {
			return exitcode.UsageError(errors.New("--agent-binary has no use with --rethinkdb-addr: it is for reaching RethinkDB through the Docker context"))
		}
		if err := o.direct.Validate(); err != nil {
			return exitcode.UsageError(err)
		}
		return nil
	}
	d := o.direct.Options
	for flag, set := range map[string]bool{
		"--rethinkdb-ca": d.CAFile != "", "--rethinkdb-cert": d.CertFile != "", "--rethinkdb-key": d.KeyFile != "",
		"--rethinkdb-server-name": d.ServerName != "", "--rethinkdb-password-file": d.PasswordFile != "",
	} {
		if set {
			return exitcode.UsageError(fmt.Errorf("%s needs --rethinkdb-addr; without it RethinkDB is reached through the Docker context, with DTR's own certificates", flag))
		}
	}
	return nil
}

// checkDTRVersion checks --dtr-version v: given when connecting directly,
// unless missing is empty (the error that says why it is needed), and of
// a version's form.
func (o *targetOptions) checkDTRVersion(v, missing string) error {
	if v == "" && missing != "" && o.isDirect() {
		return exitcode.UsageError(errors.New(missing))
	}
	if v != "" && !dtrversion.Valid(v) {
		return exitcode.UsageError(fmt.Errorf("--dtr-version %q: expected a version such as 2.9.4", v))
	}
	return nil
}

// locate finds the DTR behind the Docker context and chooses the replica
// (pkg/dtrdb); it changes nothing. In direct mode there is nothing to find.
func (o *targetOptions) locate(ctx context.Context, dockerCli command.Cli, prog *progress.Printer) (*dtrdb.Target, error) {
	return dtrdb.Locate(ctx, dockerCli, dtrdb.Options{
		Direct: o.direct.Options, ReplicaID: o.replicaID, AllowUnhealthy: o.allowUnhealthy, AgentBinary: o.agentBinary,
	}, prog)
}
