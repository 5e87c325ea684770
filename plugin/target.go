package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
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
		return fmt.Errorf("--replica-id %q: a replica id is 12 lowercase hex characters, such as 0123456789ab", o.replicaID)
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
			return errors.New("--agent-binary has no use with --rethinkdb-addr: it is for reaching RethinkDB through the Docker context")
		}
		return o.direct.Validate()
	}
	d := o.direct.Options
	for flag, set := range map[string]bool{
		"--rethinkdb-ca": d.CAFile != "", "--rethinkdb-cert": d.CertFile != "", "--rethinkdb-key": d.KeyFile != "",
		"--rethinkdb-server-name": d.ServerName != "", "--rethinkdb-password-file": d.PasswordFile != "",
	} {
		if set {
			return fmt.Errorf("%s needs --rethinkdb-addr; without it RethinkDB is reached through the Docker context, with DTR's own certificates", flag)
		}
	}
	return nil
}

// target is a located replica (nil in direct mode) and, once connected, a
// session to its RethinkDB.
type target struct {
	opts    *targetOptions
	replica *dtr.Replica
	tunnel  *tunnel.Tunnel
	sess    *rethink.Session
}

// locate finds the DTR behind the Docker context and chooses the replica;
// it changes nothing. In direct mode there is nothing to find.
func (o *targetOptions) locate(ctx context.Context, dockerCli command.Cli, prog *progress.Printer) (*target, error) {
	t := &target{opts: o}
	if o.isDirect() {
		return t, nil
	}
	cluster, err := discover(ctx, dockerCli)
	if err != nil {
		return nil, err
	}
	if skew := cluster.VersionSkew(); skew != "" {
		prog.Warn("%s", skew)
	}
	rep := cluster.Replica(o.replicaID)
	if rep != nil && !rep.Healthy && o.allowUnhealthy {
		prog.Warn("replica %s is not healthy (%s): using it as --replica-id asks", rep.ID, strings.Join(rep.Problems, "; "))
	} else if rep, err = cluster.Choose(o.replicaID); err != nil {
		return nil, err
	}
	why := "--replica-id"
	if o.replicaID == "" {
		why = "the healthy replica with the lowest id"
	}
	prog.Step("using replica %s on node %s (DTR %s): %s", rep.ID, rep.Node, rep.Version, why)
	t.replica = rep
	return t, nil
}

// discover finds the DTR's replicas through the active Docker context.
func discover(ctx context.Context, dockerCli command.Cli) (*dtr.Cluster, error) {
	name := dockerCli.CurrentContext()
	cluster, err := dtr.Discover(ctx, dockerCli.Client())
	if errors.Is(err, dtr.ErrNoDTR) {
		return nil, fmt.Errorf("no DTR found through Docker context %q (%s): no container is named dtr-rethinkdb-<replica id>; use the context of the UCP that runs DTR (a client bundle, or docker context use), or pass --rethinkdb-addr", name, dockerCli.DockerEndpoint().Host)
	}
	if err != nil {
		return nil, fmt.Errorf("through Docker context %q: %w", name, err)
	}
	return cluster, nil
}

// connect opens the session: through a tunnel helper on the replica's
// node, or directly. connections is the driver's pool size.
func (t *target) connect(ctx context.Context, dockerCli command.Cli, prog *progress.Printer, connections int) error {
	conn := t.opts.direct.Options
	if t.replica != nil {
		tun, err := tunnel.Open(ctx, dockerCli.Client(), tunnel.Options{
			Replica:     t.replica,
			AgentBinary: t.opts.agentBinary,
			Log:         prog.Step,
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while opening the tunnel to replica %s", t.replica.ID)
			}
			return err
		}
		t.tunnel = tun
		conn = rethink.Options{
			Addr: tun.Addr(), TLS: tun.TLS, User: "admin",
			Via: fmt.Sprintf("the tunnel to replica %s on node %s", t.replica.ID, t.replica.Node),
		}
	}
	conn.Connections = connections
	sess, err := rethink.Connect(ctx, conn)
	if err != nil {
		return t.explain(err)
	}
	t.sess = sess
	if t.replica != nil {
		prog.Step("connected to rethinkdb of replica %s through %s", t.replica.ID, t.tunnel.Helper)
	} else {
		prog.Step("connected to rethinkdb at %s", sess.Addr())
	}
	return nil
}

// reconnect drops the session and tunnel and opens new ones: after a lost
// connection, a rollback needs a way in again.
func (t *target) reconnect(ctx context.Context, dockerCli command.Cli, prog *progress.Printer, connections int) error {
	if t.sess != nil {
		t.sess.Close()
		t.sess = nil
	}
	if t.tunnel != nil {
		if err := t.tunnel.Close(); err != nil {
			prog.Warn("%v", err)
		}
		t.tunnel = nil
	}
	return t.connect(ctx, dockerCli, prog, connections)
}

// explain adds what the tunnel knows to a driver error, which is often a
// bare EOF when the far side went away.
func (t *target) explain(err error) error {
	if err == nil {
		return nil
	}
	if t.tunnel != nil {
		if terr := t.tunnel.Err(); terr != nil {
			return fmt.Errorf("%w (%v)", err, terr)
		}
	}
	if connectionClosed(err) {
		if t.replica != nil {
			return fmt.Errorf("%w (RethinkDB of replica %s closed the connection: check that dtr-rethinkdb-%s is running, with docker dtr status)", err, t.replica.ID, t.replica.ID)
		}
		return fmt.Errorf("%w (RethinkDB at %s closed the connection: check that it is running)", err, t.opts.direct.Addr)
	}
	return err
}

// connectionClosed says the driver lost its connection; its errors say so
// only in their text ("rethinkdb: EOF", "rethinkdb: unexpected EOF").
func connectionClosed(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{": EOF", "unexpected EOF", "connection reset", "broken pipe", "use of closed network connection", "connection is closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// dtrVersion is the target's DTR version: the replica's, or the flag's in
// direct mode or when the replica does not say.
func (t *target) dtrVersion(flag string) (string, error) {
	rep := t.replica
	switch {
	case rep == nil:
		return flag, nil
	case !dtrversion.Valid(rep.Version) && flag == "":
		return "", fmt.Errorf("replica %s does not say its DTR version (no DTR_VERSION in its containers' environment, no version tag on their images): pass --dtr-version", rep.ID)
	case !dtrversion.Valid(rep.Version):
		return flag, nil
	case flag != "" && flag != rep.Version:
		return "", fmt.Errorf("--dtr-version %s, but replica %s runs DTR %s: leave --dtr-version out, the replica's version is used", flag, rep.ID, rep.Version)
	}
	return rep.Version, nil
}

// where names the target in messages.
func (t *target) where() string {
	if t.replica != nil {
		return fmt.Sprintf("replica %s on node %s", t.replica.ID, t.replica.Node)
	}
	return "rethinkdb at " + t.opts.direct.Addr
}

// Close closes the session and removes the tunnel helper.
func (t *target) Close() error {
	if t == nil {
		return nil
	}
	if t.sess != nil {
		t.sess.Close()
	}
	if t.tunnel != nil {
		return t.tunnel.Close()
	}
	return nil
}

// closeTarget closes t, warning when the helper could not be removed.
func closeTarget(t *target, prog *progress.Printer) {
	if err := t.Close(); err != nil {
		prog.Warn("%v", err)
	}
}
