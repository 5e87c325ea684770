// Package remotedb is the database work of a command run through the
// Docker context, done next to the database: an agent in a helper on the
// replica's node (the hidden 'agent --db HOST:PORT') connects to RethinkDB
// over dtr-ol with DTR's client certificate read from the CA volume it
// mounts, and runs the same code as direct mode (pkg/metadata) for the
// plugin: the dump of `backup create`, and the plan, safety backup, load
// and undo of a restore. Only documents, compressed, cross the Docker API:
// no query round trip, no TLS byte, and never the client key.
//
// The protocol is a session of requests, one at a time, over the agent's
// standard input and output, both in frames: a byte for the type, four
// for the length (big-endian), the payload.
//
//   - The plugin sends a request frame (JSON, never a secret: the agent
//     finds the key in /ca), keepalive frames at least every
//     tunnel.KeepAlive for as long as the session lasts (the lease: the
//     agent stops once its input ends or stays silent for the idle
//     timeout), and, when a load asks for one, a pass of the backup:
//     zstd-compressed data frames, then an end frame that says whether the
//     pass read what the verified backup held.
//   - The agent answers each request with progress frames, data frames (the
//     zstd stream of a dump), ask frames (a load wants a pass of the
//     backup) and, last, the request's result frame. Standard error is free
//     text (a Go panic, say), kept to explain an agent that died.
package remotedb

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"github.com/docker-dtr/docker-dtr/pkg/dbhealth"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/metadata"
	"github.com/docker-dtr/docker-dtr/pkg/repair"
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/docker-dtr/docker-dtr/pkg/zstdstream"
)

// Operations a Request asks for.
const (
	OpDump = "dump" // metadata.Backup, the archive sent back in data frames
	OpPlan = "plan" // metadata.MakePlan of a verified backup's report
	OpLoad = "load" // metadata.RestoreFrom, the backup's passes sent by the plugin
	OpUndo = "undo" // metadata.Plan.Undo
	// OpStorage reads where DTR keeps its images (dtrstorage.Read): the
	// settings hold the storage's credentials, which stay in the agent.
	OpStorage = "storage"
	// OpHealth reads the server's view of the cluster (dbhealth.Read).
	OpHealth = "health"
	// OpRevert, OpSettle and OpRescale change a table as an emergency
	// repair's plan says (repair.Revert, repair.Settle, repair.Rescale).
	OpRevert  = "revert"
	OpSettle  = "settle"
	OpRescale = "rescale"
)

// Request is one operation of the session.
type Request struct {
	Op string `json:"op"`
	// Connections is the size of the agent's pool to RethinkDB, opened
	// by the session's first request.
	Connections int `json:"connections,omitempty"`

	// A dump: metadata.BackupOptions without the progress printer.
	Info    archive.Info        `json:"info"`
	Exclude []archive.Exclusion `json:"exclude,omitempty"`
	// Only is metadata.BackupOptions.Only: null for every table.
	Only     []rethink.TableRef `json:"only"`
	Parallel int                `json:"parallel,omitempty"`
	// Estimate asks for the rows' estimate first (a progress bar's total).
	Estimate bool `json:"estimate,omitempty"`
	// AllowOutdated is metadata.BackupOptions.AllowOutdated.
	AllowOutdated bool `json:"allowOutdated,omitempty"`

	// A repair and a rescale: the table and its plan, and the replicas.
	Table    *repair.Table `json:"table,omitempty"`
	Replicas int           `json:"replicas,omitempty"`

	// A plan and a load: the verified backup's report, with what its JSON
	// leaves out.
	Report      *archive.Report      `json:"report,omitempty"`
	Definitions *archive.Definitions `json:"definitions,omitempty"`
	VersionDir  string               `json:"versionDir,omitempty"`
	// A load and an undo.
	Plan    *metadata.Plan `json:"plan,omitempty"`
	Writers int            `json:"writers,omitempty"`
}

// report is the request's report as the restore code reads it.
func (r *Request) report() (*archive.Report, error) {
	if r.Report == nil {
		return nil, fmt.Errorf("a %s request without the backup's report", r.Op)
	}
	rep := *r.Report
	rep.Definitions, rep.VersionDir = r.Definitions, r.VersionDir
	return &rep, nil
}

// withReport puts rep in the request, with what its JSON leaves out.
func (r *Request) withReport(rep *archive.Report) {
	r.Report, r.Definitions, r.VersionDir = rep, rep.Definitions, rep.VersionDir
}

// Progress is one progress frame: a total, documents gone by, or a step.
type Progress struct {
	Total int64  `json:"total,omitempty"`
	Rows  int64  `json:"rows,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	Step  string `json:"step,omitempty"`
}

// Result is a request's last frame: what it gives back, or why it failed.
type Result struct {
	Error string `json:"error,omitempty"`
	// Partial says the failed load had begun changing the database.
	Partial bool `json:"partial,omitempty"`
	// NotReady is a dump refused because tables cannot be read up to
	// date, for the plugin to tell apart (it may read from another
	// replica).
	NotReady *metadata.NotReadyError `json:"notReady,omitempty"`
	// A dump's manifest and the archive's size before compression.
	Manifest *archive.Manifest `json:"manifest,omitempty"`
	Size     int64             `json:"size,omitempty"`
	// A plan.
	Plan *metadata.Plan `json:"plan,omitempty"`
	// A load: the tables loaded and checked.
	Tables []metadata.TableResult `json:"tables,omitempty"`
	// The storage backend, without a credential.
	Storage *dtrstorage.Backend `json:"storage,omitempty"`
	// The server's view of the cluster.
	Health *dbhealth.Health `json:"health,omitempty"`
}

// passEnd is the payload of the plugin's end-of-pass frame.
type passEnd struct {
	// Error says the pass failed on the plugin's side (the backup file no
	// longer reads as the verified one did, say): the load must fail.
	Error string `json:"error,omitempty"`
}

// Frame types. From the agent: data, progress, ask (for a pass of the
// backup), result. From the plugin: request, data (of a pass), end (of a
// pass), keepalive.
const (
	frameData      = 'd'
	frameProgress  = 'p'
	frameAsk       = 'a'
	frameResult    = 'r'
	frameRequest   = 'q'
	framePassEnd   = 'e'
	frameKeepAlive = 'k'
)

// maxControl bounds every frame but data: a request carries the backup's
// report and plan, a result a manifest, a line per table. maxData bounds a
// data frame; writers keep to dataChunk.
const (
	maxControl = 16 << 20
	maxData    = 4 << 20
	dataChunk  = 256 << 10
)

// frameWriter writes frames; a compressor writes from goroutines of its
// own while progress and keepalives go too, so writes take a lock.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	hdr [5]byte
	err error
}

func (f *frameWriter) frame(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.hdr[0] = typ
	binary.BigEndian.PutUint32(f.hdr[1:], uint32(len(p)))
	if _, err := f.w.Write(f.hdr[:]); err != nil {
		f.err = err
		return err
	}
	if _, err := f.w.Write(p); err != nil {
		f.err = err
		return err
	}
	return nil
}

func (f *frameWriter) json(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.frame(typ, b)
}

// Write sends p as data frames.
func (f *frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), maxData)]
		if err := f.frame(frameData, c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// dataStream is a zstd stream sent as data frames of about dataChunk
// bytes: a dump's archive, a pass of a backup. The fastest level: the
// stream crosses one link, once; what matters is that the sender keeps up
// with its source (RethinkDB on the node's CPU, the backup file).
type dataStream struct {
	bw *bufio.Writer
	zw *zstdstream.Writer
}

func newDataStream(fw *frameWriter) (*dataStream, error) {
	bw := bufio.NewWriterSize(fw, dataChunk)
	zw, err := zstdstream.NewWriter(bw)
	if err != nil {
		return nil, err
	}
	return &dataStream{bw: bw, zw: zw}, nil
}

func (d *dataStream) Write(p []byte) (int, error) { return d.zw.Write(p) }

// Close ends the zstd stream and sends what is left of it.
func (d *dataStream) Close() error {
	if err := d.zw.Close(); err != nil {
		return err
	}
	return d.bw.Flush()
}

// Abort leaves the stream without its end: the reader finds it cut.
func (d *dataStream) Abort() { d.zw.Abort() }

// ErrNoResult is the error of a frame stream that ended before its result:
// the agent went away.
var ErrNoResult = errors.New("the stream ended before the request's result")

// readFrame reads a frame's header, and its payload unless it is data
// (left unread: size says how much follows). A stream that ends, even
// inside a frame, is ErrNoResult.
func readFrame(r *bufio.Reader) (typ byte, size int, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = ErrNoResult
		}
		return 0, 0, nil, err
	}
	typ, size = hdr[0], int(binary.BigEndian.Uint32(hdr[1:]))
	switch typ {
	case frameData, frameProgress, frameAsk, frameResult, frameRequest, framePassEnd, frameKeepAlive:
	default:
		return 0, 0, nil, fmt.Errorf("a frame of unknown type %#x: not this protocol (a plugin or agent of another version?)", typ)
	}
	if typ == frameData {
		if size > maxData {
			return 0, 0, nil, fmt.Errorf("a data frame of %d bytes (at most %d)", size, maxData)
		}
		return typ, size, nil, nil
	}
	if size > maxControl {
		return 0, 0, nil, fmt.Errorf("a frame of %d bytes (at most %d)", size, maxControl)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = ErrNoResult
		}
		return 0, 0, nil, err
	}
	return typ, size, payload, nil
}

// frameReader reads the agent's frames for one request: its data frames
// as one stream, progress frames handed to onProgress and ask frames to
// onAsk; it ends (io.EOF) at the result frame, which it keeps. reset
// readies it for the session's next request.
type frameReader struct {
	r          *bufio.Reader
	onProgress func(Progress)
	onAsk      func() error
	left       int
	result     *Result
	err        error
}

func newFrameReader(r io.Reader, onProgress func(Progress)) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10), onProgress: onProgress}
}

// reset readies f for the next request, once the last one's result came.
func (f *frameReader) reset(onProgress func(Progress), onAsk func() error) {
	f.onProgress, f.onAsk, f.result = onProgress, onAsk, nil
	if f.err == io.EOF {
		f.err = nil
	}
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if err := f.next(); err != nil {
			f.err = err
			return 0, err
		}
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	if err == io.EOF {
		err = ErrNoResult
	}
	if err != nil {
		f.err = err
	}
	return n, err
}

// next reads frames up to the next data frame, or the result (EOF).
func (f *frameReader) next() error {
	typ, size, b, err := readFrame(f.r)
	if err != nil {
		if err != ErrNoResult {
			err = fmt.Errorf("the agent sent %w", err)
		}
		return err
	}
	switch typ {
	case frameData:
		f.left = size
		return nil
	case frameResult:
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("the agent's result: %w", err)
		}
		f.result = &res
		return io.EOF
	case frameProgress:
		var pr Progress
		if err := json.Unmarshal(b, &pr); err != nil {
			return fmt.Errorf("the agent's progress: %w", err)
		}
		if f.onProgress != nil {
			f.onProgress(pr)
		}
		return nil
	case frameAsk:
		if f.onAsk == nil {
			return errors.New("the agent asked for a pass of the backup where none was to be sent")
		}
		return f.onAsk()
	default:
		return fmt.Errorf("the agent sent a frame of unknown type %#x: not this protocol (an agent of another version?)", typ)
	}
}

// untilResult reads the request's frames up to its result, which it
// returns; data frames are an error (only a dump sends them).
func (f *frameReader) untilResult() (*Result, error) {
	var b [1]byte
	if _, err := f.Read(b[:]); err != io.EOF {
		if err == nil {
			err = errors.New("the agent sent data where a result was due")
		}
		return nil, err
	}
	return f.result, nil
}
