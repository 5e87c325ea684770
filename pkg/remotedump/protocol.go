// Package remotedump is `backup create` through the Docker context done
// next to the database: an agent in a helper on the replica's node (the
// hidden 'agent --dump') connects to RethinkDB over dtr-ol with DTR's
// client certificate read from the CA volume it mounts, runs the same dump
// as direct mode (metadata.Backup), and sends the archive zstd-compressed
// over the helper's attach connection. The plugin decompresses it into
// its backup file. Only documents, compressed, cross the Docker API: no
// query round trip, no TLS byte, and never the client key.
//
// The protocol, over the agent's standard input and output:
//
//  1. The plugin writes one line of JSON, a Request (no secret: the agent
//     finds the key in /ca). Its stdin is then the lease: an empty line
//     every tunnel.KeepAlive; the agent stops once it ends or stays silent
//     for the idle timeout.
//  2. The agent writes frames on stdout: a byte for the type, four for the
//     length (big-endian), the payload. Data frames carry the zstd stream
//     of the archive; progress frames a Progress; the last frame is the
//     Result, after all the data. Standard error is free text (a Go
//     panic, say), kept to explain an agent that died.
package remotedump

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/archive"
)

// Request is what the plugin asks of the agent: metadata.BackupOptions
// without the progress printer.
type Request struct {
	Info     archive.Info        `json:"info"`
	Exclude  []archive.Exclusion `json:"exclude,omitempty"`
	Parallel int                 `json:"parallel"`
	// Estimate asks for the rows' estimate first (a progress bar's total).
	Estimate bool `json:"estimate,omitempty"`
}

// Progress is one progress frame: a total, documents gone by, or a step.
type Progress struct {
	Total int64  `json:"total,omitempty"`
	Rows  int64  `json:"rows,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	Step  string `json:"step,omitempty"`
}

// Result is the last frame: the manifest and the archive's size before
// compression, or why the dump failed.
type Result struct {
	Manifest *archive.Manifest `json:"manifest,omitempty"`
	Size     int64             `json:"size,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Frame types.
const (
	frameData     = 'd'
	frameProgress = 'p'
	frameResult   = 'r'
)

// maxControl bounds a progress or result frame: a manifest is a line per
// table. maxData bounds a data frame, which the agent keeps to dataChunk.
const (
	maxControl = 16 << 20
	maxData    = 4 << 20
	dataChunk  = 256 << 10
	maxRequest = 1 << 20
)

// frameWriter writes frames; the compressor writes from goroutines of its
// own while the dump reports progress, so writes take a lock.
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

// ErrNoResult is the error of a frame stream that ended before its result:
// the agent went away.
var ErrNoResult = errors.New("the stream ended before the dump's result")

// frameReader reads the data frames of r as one stream, handing progress
// frames to onProgress; it ends (io.EOF) at the result frame, which it
// keeps.
type frameReader struct {
	r          *bufio.Reader
	onProgress func(Progress)
	left       int
	result     *Result
	err        error
}

func newFrameReader(r io.Reader, onProgress func(Progress)) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10), onProgress: onProgress}
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

// next reads frame headers up to the next data frame, or the result (EOF).
func (f *frameReader) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return ErrNoResult
		}
		return err
	}
	size := int(binary.BigEndian.Uint32(hdr[1:]))
	switch hdr[0] {
	case frameData:
		if size > maxData {
			return fmt.Errorf("the agent sent a data frame of %d bytes (at most %d)", size, maxData)
		}
		f.left = size
		return nil
	case frameProgress, frameResult:
		if size > maxControl {
			return fmt.Errorf("the agent sent a frame of %d bytes (at most %d)", size, maxControl)
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(f.r, b); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return ErrNoResult
			}
			return err
		}
		if hdr[0] == frameResult {
			var res Result
			if err := json.Unmarshal(b, &res); err != nil {
				return fmt.Errorf("the agent's result: %w", err)
			}
			f.result = &res
			return io.EOF
		}
		var pr Progress
		if err := json.Unmarshal(b, &pr); err != nil {
			return fmt.Errorf("the agent's progress: %w", err)
		}
		if f.onProgress != nil {
			f.onProgress(pr)
		}
		return nil
	default:
		return fmt.Errorf("the agent sent a frame of unknown type %#x: not the dump protocol (an agent of another version?)", hdr[0])
	}
}
