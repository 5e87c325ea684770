package remotedump

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

	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/docker-dtr/docker-dtr/pkg/tunnel"
	"github.com/klauspost/compress/zstd"
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
			return nil, fmt.Errorf("--dump %s: %w", addr, err)
		}
		tls, err := tunnel.LocalTLS(caRoot, host)
		if err != nil {
			return nil, err
		}
		return rethink.Connect(ctx, rethink.Options{Addr: addr, TLS: tls, User: "admin", Connections: connections, Via: "dtr-ol (" + addr + ")"})
	}
}

// Serve is the agent's side of the protocol (see the package comment):
// it reads the request on stdin, dumps through connect and writes the
// frames on stdout. It returns the dump's error, which the result frame
// has already told the plugin when stdout still worked.
func Serve(connect Connector, stdin io.Reader, stdout io.Writer, idle time.Duration) error {
	br := bufio.NewReaderSize(stdin, 64<<10)
	line, err := readLine(br)
	if err != nil {
		return fmt.Errorf("reading the plugin's request: %w", err)
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return fmt.Errorf("the plugin's request: %w", err)
	}
	// The rest of stdin is the lease: the dump stops once the plugin is gone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, w := tunnel.Watch(br, idle)
	go io.Copy(io.Discard, lease)
	go func() {
		<-w.Done()
		cancel()
	}()

	fw := &frameWriter{w: stdout}
	res, err := dump(ctx, connect, req, fw)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%s)", err, w.Why())
		}
		res = Result{Error: err.Error()}
	}
	if ferr := fw.json(frameResult, res); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// readLine reads one line of at most maxRequest bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxRequest {
			return nil, errors.New("the request line is too long")
		}
		if err == nil {
			return line, nil
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// dump runs metadata.Backup into the zstd stream of data frames.
func dump(ctx context.Context, connect Connector, req Request, fw *frameWriter) (Result, error) {
	parallel := max(req.Parallel, 1)
	sess, err := connect(ctx, parallel)
	if err != nil {
		return Result{}, err
	}
	defer sess.Close()
	prog := &reporter{fw: fw}
	prog.Step("connected to rethinkdb at %s from the dump helper", sess.Addr())
	opts := metadata.BackupOptions{Info: req.Info, Exclude: req.Exclude, Parallel: parallel, Progress: prog}
	if req.Estimate {
		if err := fw.json(frameProgress, Progress{Total: metadata.EstimateRows(ctx, sess, opts)}); err != nil {
			return Result{}, err
		}
	}
	// The chunks the compressor writes become data frames of about
	// dataChunk bytes each.
	bw := bufio.NewWriterSize(fw, dataChunk)
	// The fastest level: the stream crosses one link, once; what matters
	// is that the agent keeps up with RethinkDB on the node's CPU.
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	if err != nil {
		return Result{}, err
	}
	cw := &countWriter{w: zw}
	m, err := metadata.Backup(ctx, sess, cw, opts)
	if err != nil {
		zw.Reset(io.Discard) // no end for an unfinished stream
		zw.Close()
		return Result{}, err
	}
	if err := zw.Close(); err != nil {
		return Result{}, err
	}
	if err := bw.Flush(); err != nil {
		return Result{}, err
	}
	prog.flush()
	return Result{Manifest: m, Size: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// reporter is the dump's metadata.Progress and Counter: steps go at once,
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
