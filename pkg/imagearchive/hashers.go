package imagearchive

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"sync"
)

// inlineHashMax is the largest file a pass hashes on its own goroutine:
// handing a link file or a small config over costs more than hashing it.
const inlineHashMax = 64 << 10

// hashChunks bounds the file bytes read ahead of the hashers: 4 MiB.
const hashChunks = 16

// fileHashers hash a pass's larger files on goroutines of their own, a
// file each at a time, while the pass reads on: a verify then reads at
// the speed of SHA-256 on every core, not on one (BenchmarkVerifyStream).
// Each file's bytes are copied into chunks from a fixed pool, so what is
// read ahead is bounded whatever the files' sizes.
type fileHashers struct {
	jobs    chan hashJob
	free    chan []byte
	wg      sync.WaitGroup
	pending []pendingSum
	closed  bool
}

type hashJob struct {
	chunks chan []byte
	sum    *[sha256.Size]byte
}

// pendingSum is a record whose SHA-256 a hasher is computing.
type pendingSum struct {
	record int
	sum    *[sha256.Size]byte
}

func newFileHashers() *fileHashers {
	n := min(runtime.GOMAXPROCS(0), 4)
	h := &fileHashers{jobs: make(chan hashJob, 64), free: make(chan []byte, hashChunks)}
	for range hashChunks {
		h.free <- make([]byte, streamBufferSize)
	}
	h.wg.Add(n)
	for range n {
		go func() {
			defer h.wg.Done()
			d := sha256.New()
			for job := range h.jobs {
				d.Reset()
				for c := range job.chunks {
					d.Write(c)
					h.free <- c[:cap(c)]
				}
				d.Sum(job.sum[:0])
			}
		}()
	}
	return h
}

// copy reads src to its end into a hasher, for the record at index
// record, and returns the bytes read; the SHA-256 is in the record once
// wait has returned. A read error ends the file where it came.
func (h *fileHashers) copy(record int, src io.Reader) (int64, error) {
	job := hashJob{chunks: make(chan []byte, hashChunks), sum: new([sha256.Size]byte)}
	h.pending = append(h.pending, pendingSum{record: record, sum: job.sum})
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
// record (a file the pass stopped in has none).
func (h *fileHashers) wait(records []record) {
	h.close()
	for _, p := range h.pending {
		if p.record < len(records) {
			records[p.record].sha256 = hex.EncodeToString(p.sum[:])
		}
	}
}

// close stops the hashers, once what was handed to them is hashed.
func (h *fileHashers) close() {
	if !h.closed {
		h.closed = true
		close(h.jobs)
		h.wg.Wait()
	}
}
