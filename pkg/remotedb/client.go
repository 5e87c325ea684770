package remotedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/iocount"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/repair"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Hooks hear the agent's progress: Total once, before the first row (when
// a dump asked for an estimate); Progress its steps, and its counts when
// it is also a metadata.Counter.
type Hooks struct {
	Total    func(rows int64)
	Progress metadata.Progress
}

func (h Hooks) onProgress() func(Progress) {
	counter, _ := h.Progress.(metadata.Counter)
	return func(p Progress) {
		switch {
		case p.Step != "":
			if h.Progress != nil {
				h.Progress.Step("%s", p.Step)
			}
		case p.Total != 0:
			if h.Total != nil {
				h.Total(p.Total)
			}
		case counter != nil:
			counter.Add(p.Rows, p.Bytes)
		}
	}
}

// Options say where the session's helper runs.
type Options struct {
	Replica     *dtr.Replica
	AgentBinary string
	// Connections is the agent's pool to RethinkDB.
	Connections int
	// Log reports the helper's steps and warnings; nil is quiet.
	Log func(format string, args ...any)
}

// KeepAlive is how often the plugin's side speaks when it has nothing
// else to send (tunnel.KeepAlive; shorter in tests).
var KeepAlive = tunnel.KeepAlive

// Session is a database helper on a replica's node and its agent's
// session to RethinkDB: requests go one at a time. A request interrupted
// or cut off ends the session (Broken); a new one takes a new Session.
type Session struct {
	Helper, Node string
	link         link
	in           *frameWriter
	out          *frameReader
	connections  int
	log          func(format string, args ...any)
	stop         chan struct{}
	once         sync.Once

	mu     sync.Mutex
	broken error
}

// Start starts the database helper on the replica's node. Close it in
// every case: that removes the helper.
func Start(ctx context.Context, api tunnel.API, o Options) (*Session, error) {
	jo := tunnel.DBJob(o.Replica)
	jo.AgentBinary, jo.Log = o.AgentBinary, o.Log
	job, err := tunnel.StartJob(ctx, api, jo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while starting the database helper on node %s: %w", o.Replica.Node, ctx.Err())
		}
		return nil, err
	}
	s := newSession(job.Helper, job.Node, job, o.Connections)
	s.log = o.Log
	return s, nil
}

// link is the way to the agent: a tunnel.Job, or pipes in tests.
type link interface {
	Stdin() io.Writer
	Stdout() io.Reader
	// Interrupt ends the link at once; Lost explains a stream that ended
	// early; Close ends the agent's input and removes its helper.
	Interrupt()
	Lost(err error) error
	Close() error
}

func newSession(helper, node string, l link, connections int) *Session {
	s := &Session{Helper: helper, Node: node, link: l, in: &frameWriter{w: l.Stdin()},
		out: newFrameReader(l.Stdout(), nil), connections: connections, stop: make(chan struct{})}
	// The lease: the agent stops once these stop (the plugin was killed).
	go s.keepAlive()
	return s
}

func (s *Session) keepAlive() {
	tick := time.NewTicker(KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			if s.in.frame(frameKeepAlive, nil) != nil {
				return
			}
		}
	}
}

// Close ends the agent's input and removes the helper.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.once.Do(func() { close(s.stop) })
	return s.link.Close()
}

// logSteps is a metadata.Progress that only logs steps.
type logSteps func(format string, args ...any)

func (l logSteps) Step(format string, args ...any) { l(format, args...) }

// Broken is why the session can take no more requests (nil while it can).
func (s *Session) Broken() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}

// Dump has the agent dump as req says (its Op is set here), writes the
// archive to w and returns its manifest.
func (s *Session) Dump(ctx context.Context, req Request, w io.Writer, hooks Hooks) (*archive.Manifest, error) {
	req.Op = OpDump
	var m *archive.Manifest
	err := s.do(ctx, req, hooks, nil, func(fr *frameReader) (lost bool, err error) {
		m, lost, err = receive(fr, w)
		return lost, err
	})
	return m, err
}

// Plan has the agent compare the verified backup's report with the
// database.
func (s *Session) Plan(ctx context.Context, rep *archive.Report) (*metadata.Plan, error) {
	req := Request{Op: OpPlan}
	req.withReport(rep)
	res, err := s.result(ctx, req, Hooks{}, nil)
	if err != nil {
		return nil, err
	}
	if res.Plan == nil {
		return nil, errors.New("the database helper's plan is empty")
	}
	return res.Plan, nil
}

// Load has the agent restore the backup that open reads into the
// database as plan says (metadata.RestoreFrom, forced): each pass the
// agent asks for is read here, compressed, and sent.
func (s *Session) Load(ctx context.Context, open archive.Source, rep *archive.Report, plan *metadata.Plan, writers int, hooks Hooks) ([]metadata.TableResult, error) {
	req := Request{Op: OpLoad, Plan: plan, Writers: writers}
	req.withReport(rep)
	res, err := s.result(ctx, req, hooks, open)
	if err != nil {
		return nil, err
	}
	return res.Tables, nil
}

// Storage has the agent read where DTR keeps its images.
func (s *Session) Storage(ctx context.Context) (dtrstorage.Backend, error) {
	res, err := s.result(ctx, Request{Op: OpStorage}, Hooks{}, nil)
	if err != nil {
		return dtrstorage.Backend{}, err
	}
	if res.Storage == nil {
		return dtrstorage.Backend{}, errors.New("the database helper's storage answer is empty")
	}
	return *res.Storage, nil
}

// Health has the agent read its server's view of the cluster.
func (s *Session) Health(ctx context.Context) (*dbhealth.Health, error) {
	res, err := s.result(ctx, Request{Op: OpHealth}, Hooks{}, nil)
	if err != nil {
		return nil, err
	}
	if res.Health == nil {
		return nil, errors.New("the database helper's health answer is empty")
	}
	return res.Health, nil
}

// Revert and Settle have the agent change a table as a repair's plan
// says.
func (s *Session) Revert(ctx context.Context, t repair.Table) error {
	_, err := s.result(ctx, Request{Op: OpRevert, Table: &t}, Hooks{}, nil)
	return err
}

func (s *Session) Settle(ctx context.Context, t repair.Table) error {
	_, err := s.result(ctx, Request{Op: OpSettle, Table: &t}, Hooks{}, nil)
	return err
}

// Rescale has the agent give a table n replicas.
func (s *Session) Rescale(ctx context.Context, t repair.Table, n int) error {
	_, err := s.result(ctx, Request{Op: OpRescale, Table: &t, Replicas: n}, Hooks{}, nil)
	return err
}

// Undo has the agent drop what a failed restore of plan created.
func (s *Session) Undo(ctx context.Context, plan *metadata.Plan) error {
	_, err := s.result(ctx, Request{Op: OpUndo, Plan: plan}, Hooks{}, nil)
	return err
}

func (s *Session) result(ctx context.Context, req Request, hooks Hooks, open archive.Source) (*Result, error) {
	var res *Result
	err := s.do(ctx, req, hooks, open, func(fr *frameReader) (lost bool, err error) {
		if res, err = fr.untilResult(); err != nil {
			return true, err
		}
		if res.Error != "" {
			return false, &AgentError{Msg: res.Error, Partial: res.Partial}
		}
		return false, nil
	})
	return res, err
}

// do sends req and has read read the agent's answer: read says whether
// its error is a lost stream. An agent's error is returned naming the
// helper; a lost stream, or an interrupted request, breaks the session.
func (s *Session) do(ctx context.Context, req Request, hooks Hooks, open archive.Source, read func(*frameReader) (lost bool, err error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	req.Connections = s.connections
	if hooks.Progress == nil && s.log != nil {
		// The agent's steps of a request that has no progress of its
		// own (its connection to RethinkDB, say) go to the log.
		hooks.Progress = logSteps(s.log)
	}
	// An interrupt ends the read at once: the agent sees its input end.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			s.link.Interrupt()
		case <-done:
		}
	}()
	passes := &passSender{open: open, in: s.in}
	passes.ctx, passes.cancel = context.WithCancel(ctx)
	var ask func() error
	if open != nil {
		ask = passes.ask
	}
	s.out.reset(hooks.onProgress(), ask)
	lost, err := true, s.in.json(frameRequest, req)
	if err == nil {
		lost, err = read(s.out)
	}
	if err != nil && s.out.result == nil {
		// The agent's answer was not read to its end: the next request's
		// would not be told from this one's rest. A pass being sent may
		// wait on a link nobody reads (a killed agent's): cut it.
		s.broken = err
		s.link.Interrupt()
	}
	// A pass still under way is cut short: the agent is done with it.
	passes.cancel()
	passes.wg.Wait()
	var ae *AgentError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		ae.Msg = fmt.Sprintf("the database helper %s on node %s: %s", s.Helper, s.Node, ae.Msg)
		if ae.Partial {
			return &metadata.PartialError{Err: ae}
		}
		return ae
	case ctx.Err() != nil:
		s.broken = fmt.Errorf("the session with the database helper %s was interrupted", s.Helper)
		return ctx.Err()
	case lost:
		err = s.link.Lost(err)
		s.broken = err
		return err
	}
	return err
}

// passSender sends the passes of the backup a load asks for, one at a time.
type passSender struct {
	open   archive.Source
	in     *frameWriter
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (p *passSender) ask() error {
	p.wg.Wait() // the agent reads a pass to its end before it asks again
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var end passEnd
		if err := sendPass(p.ctx, p.open, p.in); err != nil {
			end.Error = err.Error()
		}
		p.in.json(framePassEnd, end)
	}()
	return nil
}

// sendPass reads one pass of open to its end (where a stream's own checks
// come) and sends it as a zstd stream of data frames.
func sendPass(ctx context.Context, open archive.Source, fw *frameWriter) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	ds, err := newDataStream(fw)
	if err != nil {
		return err
	}
	if _, err := io.Copy(ds, ctxReader{ctx, rc}); err != nil {
		ds.Abort()
		return err
	}
	return ds.Close()
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// receive reads a dump's frames from fr and writes the archive of the
// document stream they carry, decompressed and replayed, to w. It returns
// the archive's manifest, or the agent's error; lost says the stream
// ended (or failed) before the agent's result.
func receive(fr *frameReader, w io.Writer) (m *archive.Manifest, lost bool, err error) {
	dec, err := zstdstream.NewReader(fr, "the database helper's stream", nil)
	if err != nil {
		return nil, false, err
	}
	defer dec.Close()
	ow := &errWriter{w: w}
	cr := &iocount.Reader{R: dec}
	m, cerr := archive.Replay(cr, ow)
	if cerr == nil {
		// Read the zstd stream to its end, as its decoder reads ahead
		// (frames after the finish are not this function's to read
		// while the decoder may): nothing may follow the finish.
		var extra int64
		if extra, cerr = io.Copy(io.Discard, cr); cerr == nil && extra > 0 {
			cerr = fmt.Errorf("%d bytes after the document stream's finish", extra)
		}
	}
	if ow.err != nil {
		return nil, false, ow.err // the backup file's own error
	}
	n := cr.N
	res := fr.result
	switch {
	case res == nil && cerr == nil:
		// The decoder stopped at the end of a frame; what came next?
		_, cerr = io.Copy(io.Discard, fr)
		if res = fr.result; res == nil {
			return nil, true, cerr
		}
	case res == nil:
		return nil, true, cerr
	}
	if res.NotReady != nil {
		return nil, false, res.NotReady
	}
	if res.Error != "" {
		return nil, false, &AgentError{Msg: res.Error}
	}
	if cerr != nil {
		return nil, false, fmt.Errorf("the database helper's stream: %w", cerr)
	}
	if m == nil || res.Size != n {
		return nil, false, fmt.Errorf("the database helper's stream: %d bytes of documents arrived, the helper sent %d", n, res.Size)
	}
	return m, false, nil
}

// AgentError is a request that failed in the agent, as its result says (a
// RethinkDB error, say), not a lost agent. Partial says a load had begun
// changing the database.
type AgentError struct {
	Msg     string
	Partial bool
}

func (e *AgentError) Error() string { return e.Msg }

// errWriter keeps w's error apart from the reader's.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
