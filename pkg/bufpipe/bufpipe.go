// Package bufpipe runs a writer (or a reader, ReadAhead) on a goroutine of
// its own and reads what it writes through a buffer of a few chunks, so
// that the writer runs ahead of the reader by up to that buffer instead
// of in lockstep with it, as through an io.Pipe.
package bufpipe

import (
	"io"
	"sync"
)

// Run starts write on a goroutine of its own and returns the reader of
// what it writes, through n chunks of size bytes. The reader gets io.EOF
// once write has returned nil and all is read, or write's error as soon
// as it returns one. Close the reader when done with it: a write still
// running then fails with io.ErrClosedPipe. wait returns write's error
// once it has returned.
func Run(size, n int, write func(io.Writer) error) (r io.ReadCloser, wait func() error) {
	p := newPipe(size, n)
	go func() {
		w := &writer{p: p}
		err := write(w)
		if err == nil {
			err = w.flush()
		}
		p.werr = err
		if err != nil {
			close(p.failed)
		}
		close(p.full)
		close(p.done)
	}()
	return p, func() error { <-p.done; return p.werr }
}

// ReadAhead reads r on a goroutine of its own, up to n chunks of size
// bytes ahead of the reader it returns. Unlike Run's writer, it hands
// over what each read of r gives at once, not once a chunk is full: a
// stream that pauses, or stays open after its last byte (an agent's,
// until it exits), is read as far as it has come. r's error comes after
// everything read before it. Closing the reader stops the reading ahead
// at its next read of r; a read of r that waits ends only with r.
func ReadAhead(r io.Reader, size, n int) io.ReadCloser {
	return readAhead(r, size, n, false)
}

// ReadAheadOwned is ReadAhead for a source whose reads never wait on
// another party (a file, its decryption): its Close also waits for the
// read of r under way, so that r is not read after it, and the source
// can be closed at once.
func ReadAheadOwned(r io.Reader, size, n int) io.ReadCloser {
	return readAhead(r, size, n, true)
}

func readAhead(r io.Reader, size, n int, closeWaits bool) io.ReadCloser {
	p := newPipe(size, n)
	p.closeWaits = closeWaits
	go func() {
		var err error
		for err == nil {
			select {
			case <-p.closed:
				err = io.ErrClosedPipe
				continue
			default:
			}
			var c []byte
			select {
			case c = <-p.free:
			default:
				c = make([]byte, 0, size)
			}
			k, rerr := r.Read(c[:cap(c)])
			if k > 0 {
				select {
				case p.full <- c[:k]:
				case <-p.closed:
					rerr = io.ErrClosedPipe
				}
			}
			err = rerr
		}
		if err != io.EOF {
			p.werr = err
		}
		close(p.full)
		close(p.done)
	}()
	return p
}

func newPipe(size, n int) *pipe {
	return &pipe{
		full:   make(chan []byte, n),
		free:   make(chan []byte, n+2),
		closed: make(chan struct{}),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
		size:   size,
	}
}

type pipe struct {
	full      chan []byte
	free      chan []byte
	closed    chan struct{}
	failed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	// closeWaits makes Close wait for the writer (ReadAheadOwned).
	closeWaits bool
	size       int
	werr       error
	chunk      []byte // the chunk being read
	cur        []byte // what is left of it
}

func (p *pipe) Read(b []byte) (int, error) {
	select {
	case <-p.failed:
		return 0, p.werr
	case <-p.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	if len(p.cur) == 0 {
		c, ok := <-p.full
		if !ok {
			if p.werr != nil {
				return 0, p.werr
			}
			return 0, io.EOF
		}
		p.chunk, p.cur = c, c
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	if len(p.cur) == 0 {
		select {
		case p.free <- p.chunk[:0]:
		default:
		}
		p.chunk, p.cur = nil, nil
	}
	return n, nil
}

func (p *pipe) Close() error {
	p.closeOnce.Do(func() { close(p.closed) })
	if p.closeWaits {
		<-p.done
	}
	return nil
}

type writer struct {
	p   *pipe
	buf []byte
}

func (w *writer) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if w.buf == nil {
			select {
			case c := <-w.p.free:
				w.buf = c
			default:
				w.buf = make([]byte, 0, w.p.size)
			}
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], b)
		w.buf = w.buf[:len(w.buf)+k]
		b = b[k:]
		n += k
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	select {
	case w.p.full <- w.buf:
		w.buf = nil
		return nil
	case <-w.p.closed:
		return io.ErrClosedPipe
	}
}
