package tunnel

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/helpercontainer"
)

// JobOptions start an agent on a replica's node for a job of its own
// rather than the relay: the same helper (the replica's RethinkDB image, on
// dtr-ol, DTR's CA volume read-only at /ca, the agent from the node's
// cache, a lease on the plugin's connection), another kind and arguments.
type JobOptions struct {
	Replica     *dtr.Replica
	AgentBinary string
	Log         func(format string, args ...any)
	// Kind labels the helper (helpercontainer.Kind*); Prefix starts its
	// name; Role names it in messages, such as "database helper".
	Kind, Prefix, Role string
	// Args follow "agent": never a secret (a container's arguments are
	// anyone's to inspect).
	Args []string
	// Tmp gives the agent a tmpfs at /tmp.
	Tmp bool
}

// Job is a started helper whose agent talks to the plugin over its
// standard input and output.
type Job struct {
	// Helper is the container's name, Node its node.
	Helper, Node string
	h            *helper
}

// StartJob removes the helpers killed runs left, then creates and starts
// the job's helper. Close it in every case.
func StartJob(ctx context.Context, api API, o JobOptions) (*Job, error) {
	log := o.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	removeStale(ctx, api, log)
	sctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	h, err := createHelper(sctx, api, o.Replica, o.AgentBinary, job{kind: o.Kind, prefix: o.Prefix, role: o.Role, args: o.Args, tmp: o.Tmp})
	if err != nil {
		return nil, err
	}
	j := &Job{Helper: h.name, Node: h.node, h: h}
	if err := h.start(sctx); err != nil {
		j.Close()
		return nil, err
	}
	log("started %s %s on node %s (%s)", o.Role, h.name, h.node, h.agent.Describe())
	return j, nil
}

// Stdout is the agent's standard output; what it writes on standard error
// is kept for Failure.
func (j *Job) Stdout() io.Reader { return j.h.stdout }

// Stdin is the agent's standard input.
func (j *Job) Stdin() io.Writer { return j.h.hijack.Conn }

// Failure says why the agent went away: its exit code and what it printed
// on standard error, or "" when the engine cannot tell (its connection is
// gone too). It waits at most a few seconds.
func (j *Job) Failure() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return j.h.failure(ctx)
}

// Close ends the agent's input (its lease) and removes the helper.
func (j *Job) Close() error {
	if j == nil {
		return nil
	}
	return j.h.remove()
}

// DBJob is the job of 'agent --db': the database work of a command, next
// to the replica's RethinkDB (pkg/remotedb).
func DBJob(rep *dtr.Replica) JobOptions {
	return JobOptions{Replica: rep, Kind: helpercontainer.KindDB, Prefix: "docker-dtr-db-", Role: "database helper", Tmp: true,
		Args: []string{"--db", fmt.Sprintf("%s:%d", dtr.RethinkHost(rep.ID), dtr.RethinkPort)}}
}

// Interrupt closes the attach connection, so that a read of Stdout
// returns: the agent sees its input end and exits.
func (j *Job) Interrupt() { j.h.hijack.Close() }

// lostGrace is how long Lost waits to learn whether the agent exited or
// the engine's connection went: the two news race the stream's end.
const lostGrace = 5 * time.Second

// Lost explains a stream from the agent that ended (err) before the job
// was done: the agent exited (killed, or failed), or the connection to
// the Docker engine went, or neither can be told.
func (j *Job) Lost(err error) error {
	h := j.h
	select {
	case <-h.exited:
		why := fmt.Sprintf("it exited with code %d", h.code)
		if h.code == 137 {
			why += " (killed)"
		}
		if s := strings.TrimSpace(h.stderr.String()); s != "" {
			why += ": " + s
		}
		return fmt.Errorf("the %s %s on node %s exited before it was done: %s", h.role, h.name, h.node, why)
	case <-h.waitLost:
		return fmt.Errorf("the connection to the Docker engine was lost while the %s %s on node %s was working: %v", h.role, h.name, h.node, err)
	case <-time.After(lostGrace):
	}
	if why := j.Failure(); why != "" {
		return fmt.Errorf("the %s %s on node %s went away before it was done: %s", h.role, h.name, h.node, why)
	}
	return fmt.Errorf("lost the connection to the %s %s on node %s: %v", h.role, h.name, h.node, err)
}
