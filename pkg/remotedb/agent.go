package remotedb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/iocount"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/repair"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Connector opens the agent's session to RethinkDB with a pool of
// connections.
type Connector func(ctx context.Context, connections int) (*rethink.Session, error)

// Dial is the agent's Connector in a helper: addr (dtr-rethinkdb-<id>.dtr-ol:28015)
// with DTR's client certificate and CA read from caRoot ("" for /ca), and
// the server's name verified.
func Dial(addr, caRoot string) Connector {
	return func(ctx context.Context, connections int) (*rethink.Session, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("--db %s: %w", addr, err)
		}
		tls, err := tunnel.LocalTLS(caRoot, host)
		if err != nil {
			return nil, err
		}
		via := "dtr-ol (" + addr + ")"
		if loop, ok := loopback(ctx, addr); ok {
			addr, via = loop, "the loopback of "+host+"'s network namespace ("+loop+")"
		}
		return rethink.Connect(ctx, rethink.Options{Addr: addr, TLS: tls, User: "admin", Connections: connections, Via: via})
	}
}

// lookupBound is how long the agent waits for dtr-ol's name service.
const lookupBound = 2 * time.Second

// loopback is the server's address on the loopback interface when its
// name does not resolve within lookupBound: a server cut off from dtr-ol
// (its container disconnected, its node's overlay down) still answers
// there, since the helper runs in its network namespace; the certificate
// is checked against the name all the same. Where the name resolves, or
// addr is not a name, it says no.
func loopback(ctx context.Context, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil {
		return "", false
	}
	lctx, cancel := context.WithTimeout(ctx, lookupBound)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(lctx, host); err == nil || ctx.Err() != nil {
		return "", false
	}
	return net.JoinHostPort("127.0.0.1", port), true
}

// Serve is the agent's side of the session (see the package comment): it
// answers the plugin's requests, one at a time, until its input ends. It
// returns the last request's error when that one failed (its result frame
// has told the plugin), or why the plugin went away mid-session.
func Serve(connect Connector, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := newInbox(stdin, idle)
	go func() {
		<-in.watch.Done()
		cancel()
	}()
	s := &server{connect: connect, out: &frameWriter{w: stdout}, in: in}
	defer s.close()
	var last error
	for {
		var req Request
		select {
		case req = <-in.requests:
		case <-in.watch.Done():
			return in.ending(last)
		case <-in.ended:
			return in.ending(last)
		}
		res, err := s.do(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%s)", err, in.watch.Why())
			}
			res.Error = err.Error()
			var partial *metadata.PartialError
			if errors.As(err, &partial) {
				res.Error, res.Partial = partial.Err.Error(), true
			}
			errors.As(err, &res.NotReady)
		}
		last = err
		if ferr := s.out.json(frameResult, res); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
}

// server runs requests on one session to RethinkDB, opened by the first.
type server struct {
	connect Connector
	out     *frameWriter
	in      *inbox
	sess    *rethink.Session
}

func (s *server) close() {
	if s.sess != nil {
		s.sess.Close()
	}
}

func (s *server) do(ctx context.Context, req Request) (Result, error) {
	if s.sess == nil {
		sess, err := s.connect(ctx, max(req.Connections, 1))
		if err != nil {
			return Result{}, err
		}
		s.sess = sess
		s.step("connected to rethinkdb at %s from the database helper", sess.Addr())
	}
	switch req.Op {
	case OpDump:
		res, err := dump(ctx, s.sess, req, s.out)
		s.peak()
		return res, err
	case OpPlan:
		rep, err := req.report()
		if err != nil {
			return Result{}, err
		}
		plan, err := metadata.MakePlan(ctx, s.sess, rep)
		return Result{Plan: plan}, err
	case OpLoad:
		rep, err := req.report()
		if err != nil {
			return Result{}, err
		}
		if req.Plan == nil {
			return Result{}, errors.New("a load request without its plan")
		}
		prog := &reporter{fw: s.out}
		tables, err := metadata.RestoreFrom(ctx, s.sess, s.pass, rep, req.Plan, metadata.RestoreOptions{Force: true, Writers: req.Writers, Progress: prog})
		prog.flush()
		s.peak()
		return Result{Tables: tables}, err
	case OpStorage:
		b, err := dtrstorage.Read(ctx, s.sess)
		return Result{Storage: &b}, err
	case OpHealth:
		h, err := dbhealth.Read(ctx, s.sess)
		return Result{Health: h}, err
	case OpRevert, OpSettle, OpRescale:
		if req.Table == nil {
			return Result{}, fmt.Errorf("a %s request without its table", req.Op)
		}
		switch req.Op {
		case OpRevert:
			return Result{}, repair.Revert(ctx, s.sess, *req.Table)
		case OpSettle:
			return Result{}, repair.Settle(ctx, s.sess, *req.Table)
		}
		return Result{}, repair.Rescale(ctx, s.sess, *req.Table, req.Replicas)
	case OpUndo:
		if req.Plan == nil {
			return Result{}, errors.New("an undo request without its plan")
		}
		return Result{}, req.Plan.Undo(ctx, s.sess)
	}
	return Result{}, fmt.Errorf("the plugin asked for %q, which this agent does not do (an agent of another version?)", req.Op)
}

// peak says the agent's peak memory after a dump or a load: what the
// helper asks of the DTR node, which does not grow with the data.
func (s *server) peak() {
	if n := peakMemory(); n > 0 {
		s.step("the database helper's peak memory: %.1f MiB", float64(n)/(1<<20))
	}
}

func (s *server) step(format string, args ...any) {
	s.out.json(frameProgress, Progress{Step: fmt.Sprintf(format, args...)})
}

// pass is the load's archive.Source: it asks the plugin for a pass of the
// backup and reads it, decompressed, as it arrives.
func (s *server) pass() (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	if err := s.in.startPass(pw); err != nil {
		return nil, err
	}
	if err := s.out.frame(frameAsk, nil); err != nil {
		pw.CloseWithError(err)
		return nil, err
	}
	// Closing the decoder early (a failed load) leaves the rest of the
	// pass to the inbox, which drops it.
	return zstdstream.NewReader(pr, "the plugin's pass of the backup", pr)
}

// dump runs metadata.Backup into the zstd stream of data frames: the
// document stream, which the plugin replays into the archive (a fraction
// of the tar's bytes to compress here, and no hashing on the node).
func dump(ctx context.Context, sess *rethink.Session, req Request, fw *frameWriter) (Result, error) {
	prog := &reporter{fw: fw}
	opts := metadata.BackupOptions{Info: req.Info, Exclude: req.Exclude, Only: req.Only, Parallel: max(req.Parallel, 1), Progress: prog, AllowOutdated: req.AllowOutdated, DocStream: true}
	if req.Estimate {
		if err := fw.json(frameProgress, Progress{Total: metadata.EstimateRows(ctx, sess, opts)}); err != nil {
			return Result{}, err
		}
	}
	ds, err := newDataStream(fw)
	if err != nil {
		return Result{}, err
	}
	cw := &iocount.Writer{W: ds}
	if _, err := metadata.Backup(ctx, sess, cw, opts); err != nil {
		ds.Abort()
		return Result{}, err
	}
	if err := ds.Close(); err != nil {
		return Result{}, err
	}
	prog.flush()
	return Result{Size: cw.N}, nil
}

// inbox reads the plugin's frames, all the time (keepalives come even
// while a request waits on RethinkDB): requests go to the serve loop, a
// pass's data to the load that asked for it.
type inbox struct {
	r        *bufio.Reader
	watch    *tunnel.Watcher
	requests chan Request
	ended    chan struct{}
	err      error // a frame that is not this protocol; set before ended closes

	mu   sync.Mutex
	pass *io.PipeWriter // the pass under way, until its end frame
}

func newInbox(stdin io.Reader, idle time.Duration) *inbox {
	r, w := tunnel.Watch(stdin, idle)
	in := &inbox{r: bufio.NewReaderSize(r, 256<<10), watch: w, requests: make(chan Request), ended: make(chan struct{})}
	go in.run()
	go func() {
		// Silence ends the session as the input's end does.
		<-w.Done()
		in.endPass(errors.New(w.Why()))
	}()
	return in
}

func (in *inbox) run() {
	defer close(in.ended)
	for {
		typ, size, payload, err := readFrame(in.r)
		if err != nil {
			if err != ErrNoResult {
				in.err = fmt.Errorf("the plugin sent %w", err)
			}
			in.endPass(errors.New("the plugin's connection ended"))
			return
		}
		switch typ {
		case frameKeepAlive:
		case frameRequest:
			var req Request
			if err := json.Unmarshal(payload, &req); err != nil {
				in.err = fmt.Errorf("the plugin's request: %w", err)
				return
			}
			select {
			case in.requests <- req:
			case <-in.watch.Done():
				return
			}
		case frameData:
			in.data(size)
		case framePassEnd:
			var end passEnd
			if err := json.Unmarshal(payload, &end); err != nil {
				in.err = fmt.Errorf("the plugin's end of a pass: %w", err)
				return
			}
			if end.Error != "" {
				in.endPass(fmt.Errorf("the plugin's pass of the backup failed: %s", end.Error))
			} else {
				in.endPass(nil)
			}
		default:
			in.err = fmt.Errorf("the plugin sent a frame of unknown type %#x: not this protocol (a plugin of another version?)", typ)
			in.endPass(in.err)
			return
		}
	}
}

// ending is Serve's error once the input ended, stayed silent, or broke
// the protocol: the last request's error, else the protocol's, else the
// silence; nil for a plugin that closed its input between requests.
func (in *inbox) ending(last error) error {
	if last != nil {
		return last
	}
	select {
	case <-in.ended:
		if in.err != nil {
			return in.err
		}
	default: // in.err is set before ended closes
	}
	if why := in.watch.Why(); strings.HasPrefix(why, "no word") {
		return errors.New(why)
	}
	return nil
}

// data hands a data frame of size bytes to the pass under way, or drops
// it: a load that failed stopped reading its pass.
func (in *inbox) data(size int) {
	in.mu.Lock()
	pw := in.pass
	in.mu.Unlock()
	// Counted as read, not as written: a write that failed took its bytes.
	frame := &io.LimitedReader{R: in.r, N: int64(size)}
	if pw != nil {
		// The load may take its time with what came: the plugin is there.
		in.watch.Busy(true)
		io.Copy(pw, frame)
		in.watch.Busy(false)
	}
	io.Copy(io.Discard, frame)
}

func (in *inbox) startPass(pw *io.PipeWriter) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pass != nil {
		return errors.New("a pass of the backup is already under way")
	}
	select {
	case <-in.ended:
		return errors.New("the plugin's connection ended")
	default:
	}
	in.pass = pw
	return nil
}

// endPass ends the pass under way: its reader sees the end, or err.
func (in *inbox) endPass(err error) {
	in.mu.Lock()
	pw := in.pass
	in.pass = nil
	in.mu.Unlock()
	if pw != nil {
		pw.CloseWithError(err) // nil: io.EOF
	}
}

// reporter is a request's metadata.Progress and Counter: steps go at once,
// counts at most every reportEvery.
type reporter struct {
	fw          *frameWriter
	mu          sync.Mutex
	rows, bytes int64
	last        time.Time
}

const reportEvery = 100 * time.Millisecond

func (r *reporter) Step(format string, args ...any) {
	r.flush()
	r.fw.json(frameProgress, Progress{Step: strings.TrimSpace(fmt.Sprintf(format, args...))})
}

func (r *reporter) Add(rows, bytes int64) {
	r.mu.Lock()
	r.rows += rows
	r.bytes += bytes
	due := time.Since(r.last) >= reportEvery
	r.mu.Unlock()
	if due {
		r.flush()
	}
}

func (r *reporter) flush() {
	r.mu.Lock()
	p := Progress{Rows: r.rows, Bytes: r.bytes}
	r.rows, r.bytes = 0, 0
	r.last = time.Now()
	r.mu.Unlock()
	if p.Rows != 0 || p.Bytes != 0 {
		r.fw.json(frameProgress, p)
	}
}
