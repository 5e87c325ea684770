// Package dtrdb is the way into the RethinkDB of the DTR a command works
// on: a replica of the DTR behind the Docker context, found through the
// Docker API and worked on by a database helper on its node (the default:
// pkg/remotedb), or a RethinkDB reached directly (--rethinkdb-addr).
// Finding the replica changes nothing; connecting starts the helper, and
// Close removes it.
package dtrdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/agentbin"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/dtrversion"
	"github.com/docker-dtr/docker-dtr/pkg/human"
	"github.com/docker-dtr/docker-dtr/pkg/iocount"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"github.com/docker-dtr/docker-dtr/pkg/remotedb"
	"github.com/docker-dtr/docker-dtr/pkg/repair"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/docker/cli/cli/context/docker"
	"github.com/docker/docker/client"
)

// Docker is the Docker context a DTR is found through (the Docker CLI's).
type Docker interface {
	Client() client.APIClient
	CurrentContext() string
	DockerEndpoint() docker.Endpoint
}

// Options say which RethinkDB.
type Options struct {
	// Direct reaches the RethinkDB at Direct.Addr; with no Addr, a replica
	// of the DTR behind the Docker context.
	Direct rethink.Options
	// ReplicaID names the replica (--replica-id); empty for the healthy
	// replica with the lowest id.
	ReplicaID string
	// AllowUnhealthy takes a replica named by ReplicaID even when it is
	// not healthy: its registry may be what is being repaired.
	AllowUnhealthy bool
	// AgentBinary is --agent-binary, run in the tunnel helper.
	AgentBinary string
}

// IsDirect says RethinkDB is reached directly, not through Docker.
func (o Options) IsDirect() bool { return o.Direct.Addr != "" }

// Target is a located replica (nil in direct mode) and, once connected, a
// session to its RethinkDB. It is the restore engine's way into a
// database (restore.Database).
type Target struct {
	Replica *dtr.Replica

	opts        Options
	docker      Docker
	prog        *progress.Printer
	db          *remotedb.Session
	sess        *rethink.Session
	connections int
}

// Discover finds the DTR's replicas through the Docker context.
func Discover(ctx context.Context, d Docker) (*dtr.Cluster, error) {
	name := d.CurrentContext()
	cluster, err := dtr.Discover(ctx, d.Client())
	if errors.Is(err, dtr.ErrNoDTR) {
		return nil, fmt.Errorf("no DTR found through Docker context %q (%s): no container is named dtr-rethinkdb-<replica id>; use the context of the UCP that runs DTR (a client bundle, or docker context use), or pass --rethinkdb-addr", name, d.DockerEndpoint().Host)
	}
	if err != nil {
		return nil, fmt.Errorf("through Docker context %q: %w", name, err)
	}
	return cluster, nil
}

// Locate finds the DTR behind the Docker context and chooses the replica,
// saying which and why; it changes nothing. In direct mode there is
// nothing to find.
func Locate(ctx context.Context, d Docker, o Options, prog *progress.Printer) (*Target, error) {
	t := &Target{opts: o, docker: d, prog: prog}
	if o.IsDirect() {
		return t, nil
	}
	// The helper that follows needs the agent's digest: hashed meanwhile.
	agentbin.Warm(o.AgentBinary)
	cluster, err := Discover(ctx, d)
	if err != nil {
		return nil, err
	}
	if skew := cluster.VersionSkew(); skew != "" {
		prog.Warn("%s", skew)
	}
	rep := cluster.Replica(o.ReplicaID)
	if rep != nil && !rep.Healthy && o.AllowUnhealthy {
		prog.Warn("replica %s is not healthy (%s): using it as --replica-id asks", rep.ID, strings.Join(rep.Problems, "; "))
	} else if rep, err = cluster.Choose(o.ReplicaID); err != nil {
		return nil, err
	}
	why := "--replica-id"
	if o.ReplicaID == "" {
		why = "the healthy replica with the lowest id"
	}
	prog.Step("using replica %s on node %s (DTR %s): %s", rep.ID, rep.Node, rep.Version, why)
	t.Replica = rep
	return t, nil
}

// On is the way into rep's RethinkDB, found already (a restore test's
// throw-away server stands in for a replica): Connect opens it.
func On(d Docker, rep *dtr.Replica, agentBinary string, prog *progress.Printer) *Target {
	return &Target{Replica: rep, opts: Options{AgentBinary: agentBinary}, docker: d, prog: prog}
}

// Connect opens the way in: a database helper on the replica's node
// (pkg/remotedb), whose agent connects to RethinkDB next to it with
// DTR's client certificate (which never crosses the Docker API), or a
// session to RethinkDB reached directly. connections is the pool's size.
func (t *Target) Connect(ctx context.Context, connections int) error {
	t.connections = connections
	if t.Replica != nil {
		db, err := remotedb.Start(ctx, t.docker.Client(), remotedb.Options{
			Replica: t.Replica, AgentBinary: t.opts.AgentBinary, Connections: connections, Log: t.prog.Step,
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while starting the database helper for replica %s", t.Replica.ID)
			}
			return err
		}
		t.db = db
		return nil
	}
	conn := t.opts.Direct
	conn.Connections = connections
	sess, err := rethink.Connect(ctx, conn)
	if err != nil {
		return t.explain(err)
	}
	t.sess = sess
	t.prog.Step("connected to rethinkdb at %s", sess.Addr())
	return nil
}

// errNotConnected is a request made without a way in: after a Reconnect
// that failed.
var errNotConnected = errors.New("not connected to RethinkDB")

// Reconnect drops the way in and opens a new one: after a lost connection
// or helper, a rollback needs a way in again.
func (t *Target) Reconnect(ctx context.Context) error {
	t.Close()
	t.sess, t.db = nil, nil
	return t.Connect(ctx, t.connections)
}

// explain adds what is known of RethinkDB to one of its errors, which is
// often a bare EOF when the far side went away.
func (t *Target) explain(err error) error {
	if err == nil || !connectionClosed(err) {
		return err
	}
	if t.Replica != nil {
		return fmt.Errorf("%w (RethinkDB of replica %s closed the connection: check that dtr-rethinkdb-%s is running, with docker dtr status)", err, t.Replica.ID, t.Replica.ID)
	}
	return fmt.Errorf("%w (RethinkDB at %s closed the connection: check that it is running)", err, t.opts.Direct.Addr)
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

// explainAgent explains an error of the agent's, which are RethinkDB's;
// a lost helper is explained already.
func (t *Target) explainAgent(err error) error {
	var ae *remotedb.AgentError
	if errors.As(err, &ae) {
		return t.explain(err)
	}
	return err
}

// Backup dumps the target's metadata into w as metadata.Backup does (o's
// Progress is ignored: the target's printer hears it) and returns the
// manifest. Through the Docker context the dump runs next to the database
// and only the compressed archive crosses the Docker API.
//
// A replica chosen by default (no --replica-id) whose server cannot read
// every table up to date may be one cut off from the others, or one an
// emergency repair left behind, while another replica's server sees more
// of the cluster (status then names that one for backups): the backup is
// then read from that replica, once, if the refused dump wrote nothing.
func (t *Target) Backup(ctx context.Context, w io.Writer, o metadata.BackupOptions) (*archive.Manifest, error) {
	if err := t.Connect(ctx, o.Parallel); err != nil {
		return nil, err
	}
	cw := &iocount.Writer{W: w}
	m, err := t.Dump(ctx, cw, o, "dumping tables")
	var nr *metadata.NotReadyError
	if !errors.As(err, &nr) || t.Replica == nil || t.opts.ReplicaID != "" || cw.N > 0 {
		return m, err
	}
	other, h := t.wider(ctx)
	if other == nil {
		return m, err
	}
	t.prog.Step("RethinkDB server %s cannot read %s up to date, and replica %s's server %s sees more of the cluster (%d of %d tables take writes there): backing up from replica %s",
		nr.Server, human.Plural(len(nr.Tables), "table"), other.ID, h.Server, h.Writable(), len(h.Tables), other.ID)
	t.Replica = other
	o.Info.ReplicaID = other.ID
	if err := t.Reconnect(ctx); err != nil {
		return nil, err
	}
	return t.Dump(ctx, w, o, "dumping tables")
}

// wider is the replica whose server has a wider view of the cluster than
// t's server (dbhealth.Survey, as status asks), and that view; nil when
// t's is as wide, or no other could be asked.
func (t *Target) wider(ctx context.Context) (*dtr.Replica, *dbhealth.Health) {
	cluster, err := Discover(ctx, t.docker)
	if err != nil {
		return nil, nil
	}
	first := cluster.Replica(t.Replica.ID)
	if first == nil {
		return nil, nil
	}
	h, from, err := dbhealth.Survey(ctx, first, cluster.Replicas, func(ctx context.Context, rep *dtr.Replica) (*dbhealth.Health, error) {
		if rep == first {
			return t.Health(ctx) // the session already open
		}
		s, err := ReadStatus(ctx, t.docker, rep, t.opts.AgentBinary)
		if err != nil {
			return nil, err
		}
		return s.Health, nil
	})
	if err != nil || from == first {
		return nil, nil
	}
	return from, h
}

// Dump writes the archive of the tables o selects to w, under a progress
// phase of that title (with the rows' estimate as its total unless the
// printer is quiet).
func (t *Target) Dump(ctx context.Context, w io.Writer, o metadata.BackupOptions, phase string) (*archive.Manifest, error) {
	o.Progress = t.prog
	estimate := t.prog.Mode() != progress.Quiet
	switch {
	case t.db != nil:
	case t.sess == nil:
		return nil, errNotConnected
	default:
		var rows int64
		if estimate {
			rows = metadata.EstimateRows(ctx, t.sess, o)
		}
		t.prog.Phase(phase, rows, 0)
		m, err := metadata.Backup(ctx, t.sess, w, o)
		return m, t.explain(err)
	}
	req := remotedb.Request{Info: o.Info, Exclude: o.Exclude, Only: o.Only, Parallel: o.Parallel, Estimate: estimate, AllowOutdated: o.AllowOutdated}
	var phased atomic.Bool // set on the decoder's goroutine
	hooks := remotedb.Hooks{Progress: t.prog, Total: func(rows int64) {
		phased.Store(true)
		t.prog.Phase(phase, rows, 0)
	}}
	if !estimate {
		phased.Store(true)
		t.prog.Phase(phase, 0, 0)
	}
	m, err := t.db.Dump(ctx, req, w, hooks)
	if err == nil && !phased.Load() {
		t.prog.Phase(phase, 0, 0) // an agent that sent no estimate
	}
	return m, t.explainAgent(err)
}

// Plan compares a verified backup with the database (metadata.MakePlan).
func (t *Target) Plan(ctx context.Context, rep *archive.Report) (*metadata.Plan, error) {
	switch {
	case t.db != nil:
		p, err := t.db.Plan(ctx, rep)
		return p, t.explainAgent(err)
	case t.sess == nil:
		return nil, errNotConnected
	}
	p, err := metadata.MakePlan(ctx, t.sess, rep)
	return p, t.explain(err)
}

// StorageWait bounds ReadStorage: a database that does not answer must
// hold neither status nor a backup of what the volume holds (a lost
// majority is when they matter most); the helper and the read take a
// second or so.
const StorageWait = 20 * time.Second

// ReadStorage reads where DTR keeps its images through a database helper
// of its own on rep's node, removed before it returns, within
// StorageWait; its steps go to prog (nil for none).
func ReadStorage(ctx context.Context, d Docker, rep *dtr.Replica, agentBinary string, prog *progress.Printer) (dtrstorage.Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, StorageWait)
	defer cancel()
	t := On(d, rep, agentBinary, prog)
	defer t.Close()
	if err := t.Connect(ctx, 1); err != nil {
		return dtrstorage.Backend{}, err
	}
	return t.Storage(ctx)
}

// HealthWait bounds status's questions to one replica's database: the
// helper's start, the connection and the server's view of the cluster.
const HealthWait = 15 * time.Second

// Status is what status reads of a replica's database, through one
// helper: its server's view of the cluster, and DTR's storage settings
// (StorageErr says why they could not be read).
type Status struct {
	Health     *dbhealth.Health
	Storage    dtrstorage.Backend
	StorageErr error
}

// ReadStatus reads the Status of rep's database through a database helper
// of its own on rep's node, removed before it returns: the health within
// HealthWait, then the settings within StorageWait. The error says why
// the health could not be read.
func ReadStatus(ctx context.Context, d Docker, rep *dtr.Replica, agentBinary string) (*Status, error) {
	hctx, cancel := context.WithTimeout(ctx, HealthWait)
	defer cancel()
	t := On(d, rep, agentBinary, nil)
	defer t.Close()
	late := func(err error) error {
		if ctx.Err() == nil && hctx.Err() != nil {
			return fmt.Errorf("no answer within %s (%w)", HealthWait, err)
		}
		return err
	}
	if err := t.Connect(hctx, 1); err != nil {
		return nil, late(err)
	}
	h, err := t.Health(hctx)
	if err != nil {
		return nil, late(err)
	}
	sctx, cancel := context.WithTimeout(ctx, StorageWait)
	defer cancel()
	st := &Status{Health: h}
	st.Storage, st.StorageErr = t.Storage(sctx)
	return st, nil
}

// Survey asks replicas' servers for their views as dbhealth.Survey does
// (first's, then the others' at once where first's sees no majority),
// each through a database helper of its own (ReadStatus). It returns the
// widest view, whose it is, and every Status read, by replica id.
func Survey(ctx context.Context, d Docker, first *dtr.Replica, replicas []*dtr.Replica, agentBinary string) (*dbhealth.Health, *dtr.Replica, map[string]*Status, error) {
	var mu sync.Mutex
	read := map[string]*Status{}
	h, from, err := dbhealth.Survey(ctx, first, replicas, func(ctx context.Context, rep *dtr.Replica) (*dbhealth.Health, error) {
		s, err := ReadStatus(ctx, d, rep, agentBinary)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		read[rep.ID] = s
		mu.Unlock()
		return s.Health, nil
	})
	return h, from, read, err
}

// Health reads the server's view of the cluster (dbhealth).
func (t *Target) Health(ctx context.Context) (*dbhealth.Health, error) {
	switch {
	case t.db != nil:
		h, err := t.db.Health(ctx)
		return h, t.explainAgent(err)
	case t.sess == nil:
		return nil, errNotConnected
	}
	h, err := dbhealth.Read(ctx, t.sess)
	return h, t.explain(err)
}

// Revert, Settle and Rescale change a table as a repair's plan says
// (repair.Revert, repair.Settle, repair.Rescale), next to the database
// through the Docker context.
func (t *Target) Revert(ctx context.Context, tb repair.Table) error {
	return t.either(func(db *remotedb.Session) error { return db.Revert(ctx, tb) },
		func(sess *rethink.Session) error { return repair.Revert(ctx, sess, tb) })
}

func (t *Target) Settle(ctx context.Context, tb repair.Table) error {
	return t.either(func(db *remotedb.Session) error { return db.Settle(ctx, tb) },
		func(sess *rethink.Session) error { return repair.Settle(ctx, sess, tb) })
}

func (t *Target) Rescale(ctx context.Context, tb repair.Table, n int) error {
	return t.either(func(db *remotedb.Session) error { return db.Rescale(ctx, tb, n) },
		func(sess *rethink.Session) error { return repair.Rescale(ctx, sess, tb, n) })
}

// either runs a request that only succeeds or fails: through the database
// helper's agent when there is one, else on the direct session, its error
// explained either way.
func (t *Target) either(agent func(*remotedb.Session) error, direct func(*rethink.Session) error) error {
	switch {
	case t.db != nil:
		return t.explainAgent(agent(t.db))
	case t.sess == nil:
		return errNotConnected
	}
	return t.explain(direct(t.sess))
}

// Storage reads where DTR keeps its images, from its settings: through
// the Docker context the agent reads them, and only the backend's names
// and places cross the Docker API, never the storage's credentials.
func (t *Target) Storage(ctx context.Context) (dtrstorage.Backend, error) {
	switch {
	case t.db != nil:
		b, err := t.db.Storage(ctx)
		return b, t.explainAgent(err)
	case t.sess == nil:
		return dtrstorage.Backend{}, errNotConnected
	}
	b, err := dtrstorage.Read(ctx, t.sess)
	return b, t.explain(err)
}

// Load restores the backup open reads as plan says (metadata.RestoreFrom):
// through the Docker context the agent loads it next to the database, and
// the backup crosses the Docker API compressed, once for each pass.
func (t *Target) Load(ctx context.Context, open archive.Source, rep *archive.Report, plan *metadata.Plan, o metadata.RestoreOptions) ([]metadata.TableResult, error) {
	switch {
	case t.db != nil:
		res, err := t.db.Load(ctx, open, rep, plan, o.Writers, remotedb.Hooks{Progress: o.Progress})
		return res, t.explainAgent(err)
	case t.sess == nil:
		return nil, errNotConnected
	}
	o.Force = true
	res, err := metadata.RestoreFrom(ctx, t.sess, open, rep, plan, o)
	return res, t.explain(err)
}

// Undo drops what a failed restore of plan created (metadata.Plan.Undo).
func (t *Target) Undo(ctx context.Context, plan *metadata.Plan) error {
	return t.either(func(db *remotedb.Session) error { return db.Undo(ctx, plan) },
		func(sess *rethink.Session) error { return plan.Undo(ctx, sess) })
}

// DTRVersion is the target's DTR version: the replica's, or flag's
// (--dtr-version) in direct mode or when the replica does not say.
func (t *Target) DTRVersion(flag string) (string, error) {
	rep := t.Replica
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

// SetProgress has the target report to prog from now on: it was found
// and connected with a printer whose lines were held.
func (t *Target) SetProgress(prog *progress.Printer) { t.prog = prog }

// Where names the target in messages.
func (t *Target) Where() string {
	if t.Replica != nil {
		return fmt.Sprintf("replica %s on node %s", t.Replica.ID, t.Replica.Node)
	}
	return "rethinkdb at " + t.opts.Direct.Addr
}

// Close closes the session and removes the tunnel helper, warning when
// the helper could not be removed.
func (t *Target) Close() {
	if t == nil {
		return
	}
	if t.sess != nil {
		t.sess.Close()
	}
	if t.db != nil {
		if err := t.db.Close(); err != nil {
			t.prog.Warn("%v", err)
		}
	}
}
