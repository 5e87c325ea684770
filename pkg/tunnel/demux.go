package tunnel

import (
	"encoding/binary"
	"fmt"
	"io"
)

// demux reads the agent's stdout out of the engine's multiplexed attach
// stream (8-byte frame headers: stream, 0, 0, 0, size) in place, without a
// goroutine and pipe between; stderr frames go to errw.
type demux struct {
	r    io.Reader
	errw io.Writer
	left int // bytes of the current stdout frame not yet read
	hdr  [8]byte
	err  error
}

const (
	streamStdout = 1
	streamStderr = 2
)

func (d *demux) Read(p []byte) (int, error) {
	for d.left == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if _, err := io.ReadFull(d.r, d.hdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("attach stream: truncated frame header")
			}
			d.err = err
			return 0, err
		}
		size := int(binary.BigEndian.Uint32(d.hdr[4:]))
		switch d.hdr[0] {
		case streamStdout:
			d.left = size
		case streamStderr, 0:
			if _, err := io.CopyN(d.errw, d.r, int64(size)); err != nil {
				d.err = err
				return 0, err
			}
		default:
			d.err = fmt.Errorf("attach stream: unknown stream %d", d.hdr[0])
			return 0, d.err
		}
	}
	if len(p) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= n
	if err == io.EOF && d.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		d.err = err
	}
	return n, err
}

// NewDemux reads the stdout of an attach stream (no TTY) in place, stderr
// frames going to errw: one copy less, and no goroutine and pipe handing
// over each frame, than stdcopy.StdCopy into an io.Pipe.
func NewDemux(r io.Reader, errw io.Writer) io.Reader { return &demux{r: r, errw: errw} }
