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
// object 16 at a time. The prefetcher reads what a send will want, in the
// listing's order, ahead of it and several reads at a time, bounded:
// small objects whole, into memory; a large one as one stream, up to
// streamAhead of it.
//
// A large object is one request, not ranged pieces: the s3 driver's
// ranged read asks for everything from its offset on, so each piece but
// the last made the server send more than was read, and closed its
// connection half-read.

// The prefetcher's sizes, which each takes when it starts; variables
// only so that tests can make them small.
var (
	// prefetchWhole is the largest object read whole into memory.
	prefetchWhole int64 = 8 << 20
	// prefetchReads is how many requests run at once.
	prefetchReads = 16
	// prefetchBytes bounds what is held read ahead.
	prefetchBytes int64 = 96 << 20
	// streamAhead is what a large object's stream holds read ahead.
	streamAhead int64 = 16 << 20
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

// slot is one file of the send.
type slot struct {
	rel  string
	size int64
	// whole carries an object read whole; stream a large one's stream.
	whole  chan fetched
	stream chan streamed
	// Under the prefetcher's mu: started says its read has started (once
	// reserve counted it in the bound, and a request was free); skipped
	// that the send came first and read it itself; blocks that it is a
	// stream whose request waits for the send to read it.
	started, skipped, blocks bool
	// hold is what it counts against the bound: a stream's read ahead.
	hold int64
}

// prefetcher reads ahead the files a send will read, in the order they
// are added: the listing's, which may start before the listing ends (a
// bucket's reads then overlap its listing), and which may differ from the
// send's (S3 lists by bytes: "a-b/c" before "a/c"). The send takes a file
// by name, and reads one whose read has not started itself: it never
// waits on a request behind streams it will only read later.
type prefetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	b      *bucket.Bucket
	omit   map[string]int64
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []*slot          // in the order added
	byName map[string]*slot // not yet taken by the send
	listed bool             // every file is added
	held   int64            // bytes read ahead, or being read, and not yet taken
	// full says the reading ahead waits for the send to take what it
	// holds; blocked counts the large objects' streams that hold a request
	// and are not taken yet: a request ends only once the send reads on.
	full    bool
	blocked int
	// The sizes, as they were when it started.
	whole, bound, ahead int64
	reads               int
}

// newPrefetcher starts reading ahead what the send will read of the
// files added (add): every file but those left out and those inside an
// upload.
func newPrefetcher(ctx context.Context, b *bucket.Bucket, omit map[string]int64) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{ctx: ctx, cancel: cancel, b: b, omit: omit, byName: map[string]*slot{},
		whole: prefetchWhole, bound: prefetchBytes, ahead: streamAhead, reads: prefetchReads}
	p.cond = sync.NewCond(&p.mu)
	go p.run()
	return p
}

// add queues files, as they are listed.
func (p *prefetcher) add(files ...bucket.File) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range files {
		if n, ok := p.omit[f.Path]; (ok && n == f.Size) || isUpload(f.Path) {
			continue
		}
		s := &slot{rel: f.Path, size: f.Size, hold: f.Size}
		if f.Size > p.whole {
			s.stream = make(chan streamed, 1)
			s.hold = min(f.Size, p.ahead)
		} else {
			s.whole = make(chan fetched, 1)
		}
		p.queue = append(p.queue, s)
		p.byName[s.rel] = s
	}
	p.cond.Broadcast()
}

// finish says every file is added.
func (p *prefetcher) finish() {
	p.mu.Lock()
	p.listed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// reserve waits for the queue's next file that the send has not read
// itself, from i on, and for room for it in the bound; it returns the
// file and where to go on from, or nil once there is none left or the
// prefetcher stopped.
func (p *prefetcher) reserve(i int) (*slot, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; ; i++ {
		for i >= len(p.queue) && !p.listed && p.ctx.Err() == nil {
			p.cond.Wait()
		}
		if i >= len(p.queue) || p.ctx.Err() != nil {
			return nil, i
		}
		s := p.queue[i]
		p.queue[i] = nil // reserved or skipped: either way, done with
		// Hold no more than the bound ahead of the send.
		for !s.skipped && p.held+s.hold > p.bound && p.held > 0 && p.ctx.Err() == nil {
			p.full = true
			p.cond.Broadcast()
			p.cond.Wait()
		}
		p.full = false
		if s.skipped {
			continue
		}
		if p.ctx.Err() != nil {
			return nil, i
		}
		p.held += s.hold
		return s, i + 1
	}
}

// start marks s started, once it has a request of its own: false if the
// send read it first (its part of the bound is then released).
func (p *prefetcher) start(s *slot) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.skipped {
		p.held -= s.hold
		p.cond.Broadcast()
		return false
	}
	s.started = true
	if s.stream != nil {
		s.blocks = true
		p.blocked++
	}
	p.cond.Broadcast()
	return true
}

// unblock says the stream s no longer waits for the send: taken, or its
// request ended.
func (p *prefetcher) unblock(s *slot) {
	p.mu.Lock()
	if s.blocks {
		s.blocks = false
		p.blocked--
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

func (p *prefetcher) run() {
	sem := make(chan struct{}, p.reads)
	for i := 0; ; {
		var s *slot
		if s, i = p.reserve(i); s == nil {
			return
		}
		select {
		case sem <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		if !p.start(s) {
			<-sem
			continue
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
// its request counts among the reads at once until then.
func (p *prefetcher) openStream(s *slot, sem chan struct{}) {
	rc, err := p.b.Open(p.ctx, s.rel)
	if err != nil {
		p.unblock(s)
		<-sem
		s.stream <- streamed{err: err}
		return
	}
	const chunk = 1 << 20
	r, wait := bufpipe.Run(chunk, int(max(p.ahead/chunk, 1)), func(w io.Writer) error {
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
	p.unblock(s)
	<-sem
}

// open is the send's open of rel: the file read ahead, or being read,
// else a read of its own. Whether the object is there at all is known
// before it returns.
func (p *prefetcher) open(rel string) (io.ReadCloser, error) {
	p.mu.Lock()
	s, ok := p.byName[rel]
	if ok {
		delete(p.byName, rel)
		// Wait for its read to start, unless the reading ahead waits for
		// the send itself: the bound full of what the send takes later,
		// or every request held by a stream it takes later (a listing's
		// order is not always the send's).
		for !s.started && !p.full && p.blocked < p.reads && p.ctx.Err() == nil {
			p.cond.Wait()
		}
		if !s.started {
			// The send reads it itself (a reserved one's part of the
			// bound is released by start).
			s.skipped, ok = true, false
			p.cond.Broadcast()
		}
	}
	p.mu.Unlock()
	if !ok {
		return p.b.Open(p.ctx, rel)
	}
	if s.stream != nil {
		p.unblock(s)
		st := <-s.stream
		if st.err != nil {
			p.taken(s.hold)
			return nil, st.err
		}
		return &streamReader{p: p, r: st.r, held: s.hold}, nil
	}
	f := <-s.whole
	p.taken(s.hold)
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
