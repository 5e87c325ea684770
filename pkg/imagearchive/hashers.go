package imagearchive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// inlineHashMax is the largest file a pass hashes on its own goroutine:
// handing a link file or a small config over costs more than hashing it.
const inlineHashMax = 64 << 10

// hashChunks bounds the file bytes a stream's pass reads ahead of the
// hashers: 4 MiB.
const hashChunks = 16

// fileHashers hash a pass's larger files on goroutines of their own, a
// file each at a time, while the pass reads on: a verify then hashes on
// every core, not on one (BenchmarkVerifyStream). A file's bytes come
// either in chunks the pass copies from its stream, from a fixed pool,
// so that what is read ahead is bounded whatever the files' sizes; or,
// when the pass reads a file (FileSource), from the file at the entry's
// offset, read by the hasher itself: then as many large files are hashed
// at once as there are hashers, and the pass only skips over them.
type fileHashers struct {
	jobs    chan hashJob
	free    chan []byte
	wg      sync.WaitGroup
	pending []*pendingSum
}

// hashJob is one file: where it is in at, or else its chunks.
type hashJob struct {
	chunks    chan []byte
	at        io.ReaderAt
	off, size int64
	sum       *pendingSum
}

// pendingSum is a record whose SHA-256 a hasher is computing, and what
// reading it at its offset failed with.
type pendingSum struct {
	record int
	sum    [sha256.Size]byte
	err    error
}

func newFileHashers() *fileHashers {
	n := min(runtime.GOMAXPROCS(0), 4)
	// A few files queued: the pass, and its progress, stay near the
	// hashing.
	h := &fileHashers{jobs: make(chan hashJob, n), free: make(chan []byte, hashChunks)}
	for range hashChunks {
		h.free <- make([]byte, streamBufferSize)
	}
	h.wg.Add(n)
	for range n {
		go h.run()
	}
	return h
}

func (h *fileHashers) run() {
	defer h.wg.Done()
	d := sha256.New()
	var buf []byte
	for job := range h.jobs {
		d.Reset()
		if job.at != nil {
			if buf == nil {
				buf = make([]byte, streamBufferSize)
			}
			n, err := io.CopyBuffer(d, io.NewSectionReader(job.at, job.off, job.size), buf)
			if err == nil && n != job.size {
				err = fmt.Errorf("%d of its %d bytes read", n, job.size)
			}
			job.sum.err = err
		} else {
			for c := range job.chunks {
				d.Write(c)
				h.free <- c[:cap(c)]
			}
		}
		d.Sum(job.sum.sum[:0])
	}
}

// add records that a hasher computes the SHA-256 of the record at index
// record.
func (h *fileHashers) add(record int) *pendingSum {
	p := &pendingSum{record: record}
	h.pending = append(h.pending, p)
	return p
}

// copy reads src to its end into a hasher, for the record at index
// record, and returns the bytes read; the SHA-256 is in the record once
// wait has returned. A read error ends the file where it came.
func (h *fileHashers) copy(record int, src io.Reader) (int64, error) {
	job := hashJob{chunks: make(chan []byte, hashChunks), sum: h.add(record)}
	h.jobs <- job
	defer close(job.chunks)
	var n int64
	for {
		c := <-h.free
		m, err := fill(src, c)
		n += int64(m)
		if m > 0 {
			job.chunks <- c[:m]
		} else {
			h.free <- c
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// hashAt has a hasher read the record at index record from at, size
// bytes at off, and compute their SHA-256: in the record once wait has
// returned. The pass goes on past them; a file shorter than that is the
// pass's to find.
func (h *fileHashers) hashAt(record int, at io.ReaderAt, off, size int64) {
	h.jobs <- hashJob{at: at, off: off, size: size, sum: h.add(record)}
}

// fill reads into c until it is full or src ends (io.EOF) or fails: not
// io.ReadFull, which would tell a cut archive's io.ErrUnexpectedEOF from
// a file's end only by chance.
func fill(src io.Reader, c []byte) (int, error) {
	m := 0
	for m < len(c) {
		k, err := src.Read(c[m:])
		m += k
		if err != nil {
			return m, err
		}
	}
	return m, nil
}

// wait lets the hashers finish and puts each file's SHA-256 into its
// record (a file the pass stopped in has none). It returns the first
// file whose reading at its offset failed, and why.
func (h *fileHashers) wait(records []record) (string, error) {
	close(h.jobs)
	h.wg.Wait()
	for _, p := range h.pending {
		if p.record >= len(records) {
			continue
		}
		if p.err != nil {
			return records[p.record].name, p.err
		}
		records[p.record].sha256 = hex.EncodeToString(p.sum[:])
	}
	return "", nil
}
