package agent

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/bufpipe"
)

// An object store answers each read after a round trip, and serves one
// stream at a fraction of what it serves to several: read one object
// after another, the bucket's backup ran at 0.77 of a bare read of every
// object 16 at a time. The prefetcher reads what a send will want, in its
// order, ahead of it and several reads at a time, bounded: small objects
// whole, into memory; a large one as one stream, up to streamAhead of it.
//
// A large object is one request, not ranged pieces: the s3 driver's
// ranged read asks for everything from its offset on, so each piece but
// the last made the server send more than was read, and closed its
// connection half-read.
const (
	// prefetchWhole is the largest object read whole into memory.
	prefetchWhole = 8 << 20
	// streamAhead is what a large object's stream holds read ahead.
	streamAhead = 16 << 20
	// prefetchReads is how many requests run at once.
	prefetchReads = 16
	// prefetchBytes bounds what is held read ahead.
	prefetchBytes = 96 << 20
)

type fetched struct {
	data []byte
	err  error
}

// streamed is a large object's stream: what it holds read ahead, or why
// it could not be opened.
type streamed struct {
	r   io.ReadCloser
	err error
}

// slot is one file of the send, in order.
type slot struct {
	rel  string
	size int64
	// whole carries an object read whole; stream a large one's stream.
	whole  chan fetched
	stream chan streamed
}

// hold is what the slot counts against prefetchBytes.
func (s *slot) hold() int64 {
	if s.stream != nil {
		return min(s.size, streamAhead)
	}
	return s.size
}

type prefetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	b      *bucket.Bucket
	slots  []slot
	next   int
	mu     sync.Mutex
	cond   *sync.Cond
	held   int64 // bytes read ahead, or being read, and not yet taken
}

// newPrefetcher starts reading ahead the files that the send will read
// (not omitted, not inside an upload), in the send's order.
func newPrefetcher(ctx context.Context, b *bucket.Bucket, files []bucket.File, omit map[string]int64) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{ctx: ctx, cancel: cancel, b: b}
	p.cond = sync.NewCond(&p.mu)
	for _, f := range files {
		if n, ok := omit[f.Path]; (ok && n == f.Size) || isUpload(f.Path) {
			continue
		}
		s := slot{rel: f.Path, size: f.Size}
		if f.Size > prefetchWhole {
			s.stream = make(chan streamed, 1)
		} else {
			s.whole = make(chan fetched, 1)
		}
		p.slots = append(p.slots, s)
	}
	go p.run()
	return p
}

func (p *prefetcher) run() {
	sem := make(chan struct{}, prefetchReads)
	for i := range p.slots {
		s := &p.slots[i]
		// Hold no more than prefetchBytes ahead of the send.
		p.mu.Lock()
		for p.held+s.hold() > prefetchBytes && p.held > 0 && p.ctx.Err() == nil {
			p.cond.Wait()
		}
		p.held += s.hold()
		p.mu.Unlock()
		select {
		case sem <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		if s.stream != nil {
			go p.openStream(s, sem)
			continue
		}
		go func() {
			defer func() { <-sem }()
			s.whole <- p.read(s.rel, s.size)
		}()
	}
}

// read reads rel whole: fewer bytes when the object shrank since it was
// listed (the send then fails, as for a file that shrank), and no more
// than size when it grew (cut at the listed size, as the send cuts one).
func (p *prefetcher) read(rel string, size int64) fetched {
	rc, err := p.b.Open(p.ctx, rel)
	if err != nil {
		return fetched{err: err}
	}
	defer rc.Close()
	// Into a buffer of the object's size: a bytes.Buffer of that capacity,
	// filled by io.Copy, grew to twice the size to look for more, and
	// zeroing and copying those buffers was a third of the agent's CPU
	// (the benchmark's agent-alone profile, docs/benchmarks.md section 11).
	data := make([]byte, size)
	m := 0
	for m < len(data) && err == nil {
		var k int
		k, err = rc.Read(data[m:])
		m += k
	}
	if err == io.EOF {
		err = nil
	}
	return fetched{data: data[:m], err: err}
}

// openStream opens a large object and reads it, up to streamAhead ahead
// of the send, until it is read to its listed size or its reader closed;
// its request counts among prefetchReads until then.
func (p *prefetcher) openStream(s *slot, sem chan struct{}) {
	rc, err := p.b.Open(p.ctx, s.rel)
	if err != nil {
		<-sem
		s.stream <- streamed{err: err}
		return
	}
	const chunk = 1 << 20
	r, wait := bufpipe.Run(chunk, streamAhead/chunk, func(w io.Writer) error {
		_, err := io.Copy(w, io.LimitReader(rc, s.size))
		return err
	})
	s.stream <- streamed{r: r}
	// A send that stopped early (its error) may never take or close the
	// stream: its stop ends the request.
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-p.ctx.Done():
		r.Close()
		<-done
	}
	rc.Close()
	<-sem
}

// open is the send's open of rel: the file read ahead, if rel is the
// next one planned, else a read of its own. Whether the object is there
// at all is known before it returns.
func (p *prefetcher) open(rel string) (io.ReadCloser, error) {
	if p.next >= len(p.slots) || p.slots[p.next].rel != rel {
		return p.b.Open(p.ctx, rel)
	}
	s := &p.slots[p.next]
	p.next++
	if s.stream != nil {
		st := <-s.stream
		if st.err != nil {
			p.taken(s.hold())
			return nil, st.err
		}
		return &streamReader{p: p, r: st.r, held: s.hold()}, nil
	}
	f := <-s.whole
	p.taken(s.size)
	if f.err != nil {
		return nil, f.err
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// taken releases n bytes of the bound.
func (p *prefetcher) taken(n int64) {
	p.mu.Lock()
	p.held -= n
	p.cond.Broadcast()
	p.mu.Unlock()
}

// stop ends the reading ahead.
func (p *prefetcher) stop() {
	p.cancel()
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
}

// streamReader is a large object's stream, as the send reads it; Close
// ends the stream's request and releases its part of the bound.
type streamReader struct {
	p    *prefetcher
	r    io.ReadCloser
	held int64 // its part of the bound
	once sync.Once
}

func (r *streamReader) Read(b []byte) (int, error) { return r.r.Read(b) }

func (r *streamReader) Close() error {
	r.once.Do(func() {
		r.r.Close()
		r.p.taken(r.held)
	})
	return nil
}
