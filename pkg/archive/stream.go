package archive

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/docker-dtr/docker-dtr/pkg/anonfile"
)

// Source opens an archive for one pass from its start: for an encrypted
// backup, a fresh decryption of the file. A pass reads to the end, where
// the stream's integrity check, if it has one, comes as Read's error.
type Source func() (io.ReadCloser, error)

// VerifyStream is Verify of an archive read front to back, in one pass
// (a second only for the exact check of primary keys whose hashes are
// equal): what each entry is (its name, size, SHA-256 and the verdict on
// its content, not the content) is recorded as it passes, and checked
// against the manifest, the archive's last entry, at the end. It finds
// exactly what Verify finds in a file of the same bytes. An error of the
// stream (an encrypted backup that was changed or cut) is the error, and
// no report comes before the whole stream has been read.
func VerifyStream(open Source) (*Report, error) { return verifyStream(open, nil) }

// verifyStream is VerifyStream; keys, in tests, changes the key set.
func verifyStream(open Source, keys func(*keySet)) (*Report, error) {
	s, err := openStream(open)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var l layout
	var sp spool
	defer sp.close()
	var buf []byte
	ks := newKeySet()
	if keys != nil {
		keys(ks)
	}
	rc := &recorder{keys: ks, buf: &buf, layout: &l, manifest: func(off, size int64) error { return s.capture(&sp, off, size) },
		later: make([]work, 0, 1)}
	tr := newTarStream(s.bs, false)
	// Records are kept in chunks that never move, so that the workers
	// can fill them in while the stream goes on.
	var recs [][]entryRec
	pool := startWorkers(ks.hash)
	for {
		if len(recs) == 0 || len(recs[len(recs)-1]) == cap(recs[len(recs)-1]) {
			recs = append(recs, make([]entryRec, 0, recChunk))
		}
		chunk := &recs[len(recs)-1]
		r := rc.next(tr)
		*chunk = append(*chunk, r)
		if len(rc.later) > 0 {
			pool.add(&(*chunk)[len(*chunk)-1], rc.later[0])
			rc.later = rc.later[:0]
		}
		if r.end || r.err != nil || r.unread {
			break
		}
	}
	pool.wait()
	if err := s.finish(); err != nil {
		return nil, err
	}
	if rc.err != nil {
		return nil, rc.err
	}
	rep, m, err := openLayoutOf(s.src.n, l, sp.reader)
	if err != nil {
		return nil, err
	}
	rep.FullRead = true
	if rep.Kind == "" {
		return rep, nil
	}
	c := newChecker(rep, l)
	c.keys, c.buf = ks, buf
	if m != nil {
		rep.fromManifest(&m.Header)
		c.expect(&m.Header, m)
		// After expect, which has read the first entry: the manifest's
		// lines are decoded on another core while the records are applied.
		defer m.prefetch()()
	} else if rep.Kind == KindOfficial {
		rep.fromOfficial(l)
	}
apply:
	for _, chunk := range recs {
		for i := range chunk {
			if !c.apply(&chunk[i]) {
				break apply
			}
		}
	}
	c.finish()
	err = c.recheckFrom(func() (io.Reader, func() error, error) {
		s, err := openStream(open)
		if err != nil {
			return nil, nil, err
		}
		return s.src, func() error {
			defer s.close()
			return s.finish()
		}, nil
	})
	if err != nil {
		return nil, err
	}
	rep.Verified = rep.Kind == KindPlugin && rep.OK()
	return rep, nil
}

const recChunk = 4096

// workers do the records' work (SHA-256, checkDocument, primary key) on
// the cores that the stream's reading and decryption leave, in batches of
// copied content.
type workers struct {
	hash func([]byte) uint64
	todo chan *batch
	free chan *batch
	cur  *batch
	done sync.WaitGroup
}

type batch struct {
	recs  []*entryRec
	works []work
	data  []byte
}

const batchBytes, batchRecs = 1 << 20, 1 << 10

func startWorkers(hash func([]byte) uint64) *workers {
	p := &workers{hash: hash, todo: make(chan *batch, 8), free: make(chan *batch, 16)}
	for range max(runtime.GOMAXPROCS(0), 1) {
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			var buf []byte
			for b := range p.todo {
				for i, r := range b.recs {
					b.works[i].do(r, p.hash, &buf)
				}
				b.recs, b.works, b.data = b.recs[:0], b.works[:0], b.data[:0]
				select {
				case p.free <- b:
				default:
				}
			}
		}()
	}
	return p
}

// add queues the work of r; w.data is copied.
func (p *workers) add(r *entryRec, w work) {
	if p.cur != nil && (len(p.cur.data)+len(w.data) > cap(p.cur.data) || len(p.cur.recs) == batchRecs) {
		p.flush()
	}
	if p.cur == nil {
		select {
		case p.cur = <-p.free:
		default:
			p.cur = &batch{data: make([]byte, 0, batchBytes)}
		}
	}
	if len(w.data) > cap(p.cur.data) {
		w.data = bytes.Clone(w.data) // a large document: a batch of its own
	} else {
		at := len(p.cur.data)
		p.cur.data = append(p.cur.data, w.data...)
		w.data = p.cur.data[at:]
	}
	p.cur.recs = append(p.cur.recs, r)
	p.cur.works = append(p.cur.works, w)
}

func (p *workers) flush() {
	if p.cur != nil && len(p.cur.recs) > 0 {
		p.todo <- p.cur
	}
	p.cur = nil
}

// wait does the rest of the work and waits for it.
func (p *workers) wait() {
	p.flush()
	close(p.todo)
	p.done.Wait()
}

// InspectStream is Inspect of an archive read front to back: its headers
// and its manifest, kept as it passes.
func InspectStream(open Source) (*Report, error) {
	s, err := openStream(open)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var sp spool
	defer sp.close()
	var capErr error
	l := scanFrom(s.bs, false, func(off, size int64) {
		if err := s.capture(&sp, off, size); err != nil && capErr == nil {
			capErr = err
		}
	})
	if err := s.finish(); err != nil {
		return nil, err
	}
	if capErr != nil {
		return nil, capErr
	}
	rep, m, err := openLayoutOf(s.src.n, l, sp.reader)
	if err != nil {
		return nil, err
	}
	rep.summarise(l, m)
	return rep, nil
}

// stream is one pass over a Source.
type stream struct {
	rc  io.ReadCloser
	src *source
	bs  *bufSeeker
}

func openStream(open Source) (*stream, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	src := &source{r: rc}
	return &stream{rc: rc, src: src, bs: newBufStream(src)}, nil
}

// finish reads the rest of the stream, for its integrity check, and says
// whether the pass failed.
func (s *stream) finish() error {
	if s.src.failed == nil {
		io.Copy(io.Discard, s.src)
	}
	if s.src.failed != nil {
		return s.src.failed
	}
	return s.src.capErr
}

func (s *stream) close() { s.rc.Close() }

// capture keeps the size bytes at off, where the stream is now, in sp:
// the content of an entry named as the manifest, as a file's
// io.SectionReader would read it.
func (s *stream) capture(sp *spool, off, size int64) error {
	sp.reset()
	b := s.bs
	if cur := b.end - int64(b.w-b.r); cur != off {
		return errors.New("archive: the manifest is not where the stream is")
	}
	n := min(size, int64(b.w-b.r))
	sp.write(b.buf[b.r : b.r+int(n)])
	s.src.cap, s.src.capTo = sp, off+size
	return sp.err
}

// source counts what a stream gives, keeps its first error and copies a
// range of it to a spool.
type source struct {
	r      io.Reader
	n      int64
	failed error
	cap    *spool
	capTo  int64 // cap takes what comes before this offset
	capErr error
}

func (s *source) Read(p []byte) (int, error) {
	if s.failed != nil {
		return 0, s.failed
	}
	k, err := s.r.Read(p)
	if s.cap != nil && s.n < s.capTo && k > 0 {
		s.cap.write(p[:min(int64(k), s.capTo-s.n)])
		if s.cap.err != nil && s.capErr == nil {
			s.capErr = s.cap.err
		}
	}
	s.n += int64(k)
	if err != nil && !errors.Is(err, io.EOF) {
		s.failed = err
	}
	return k, err
}

// spoolInMemory is how much of a manifest stays in memory; the rest of a
// larger one goes to an unnamed file (it holds names, sizes and digests,
// no content).
const spoolInMemory = 32 << 20

// spool keeps a manifest's content.
type spool struct {
	mem    []byte
	f      *os.File
	inFile bool
	size   int64 // in f
	err    error
}

func (sp *spool) reset() {
	sp.mem, sp.size, sp.inFile = sp.mem[:0], 0, false
}

func (sp *spool) write(p []byte) {
	if sp.err != nil {
		return
	}
	if !sp.inFile && len(sp.mem)+len(p) > spoolInMemory {
		if sp.f == nil {
			if sp.f, sp.err = anonfile.Create("", "docker-dtr-manifest-*"); sp.err != nil {
				return
			}
		}
		if _, sp.err = sp.f.WriteAt(sp.mem, 0); sp.err != nil {
			return
		}
		sp.size, sp.mem, sp.inFile = int64(len(sp.mem)), sp.mem[:0], true
	}
	if sp.inFile {
		_, sp.err = sp.f.WriteAt(p, sp.size)
		sp.size += int64(len(p))
		return
	}
	sp.mem = append(sp.mem, p...)
}

// reader reads what the spool holds.
func (sp *spool) reader() io.Reader {
	if sp.inFile {
		return io.NewSectionReader(sp.f, 0, sp.size)
	}
	return bytes.NewReader(sp.mem)
}

func (sp *spool) close() {
	if sp.f != nil {
		sp.f.Close()
	}
}
