package archive

import (
	"archive/tar"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"sync"
)

// A prehasher reads the archive ahead of the check, on another core, and
// does the check's heaviest work on each regular file: its SHA-256 and
// checkDocument. Both depend on nothing but the bytes, so the check takes
// them instead of computing them where the entry (its content's offset and
// size) is the same. It follows the archive only through the headers that
// tarStream parses itself; past any other, the check computes everything.
type prehasher struct {
	results chan []hashed
	stop    chan struct{}
	done    sync.WaitGroup
	batch   []hashed
	closed  bool
}

// hashed is what a prehasher found of one regular file.
type hashed struct {
	off, size int64
	sum       [sha256.Size]byte
	hasSum    bool  // sum is set: the check hashes larger documents itself
	docErr    error // checkDocument's
}

const prehashBatch = 128

// prehashSumBelow balances the work: the check's own work per entry is
// mostly fixed, the prehasher's grows with the documents. Of every other
// document this large or larger, the check computes the SHA-256 itself.
const prehashSumBelow = 1 << 10

// startPrehash starts a prehasher, or returns nil where there is no other
// core to run it.
func startPrehash(f *os.File) *prehasher {
	if runtime.GOMAXPROCS(0) < 2 {
		return nil
	}
	p := &prehasher{results: make(chan []hashed, 64), stop: make(chan struct{})}
	p.done.Add(1)
	go p.run(f)
	return p
}

func (p *prehasher) run(f *os.File) {
	defer p.done.Done()
	defer close(p.results)
	bs := newBufSeekerAt(f, 0)
	batch := make([]hashed, 0, prehashBatch)
	large := 0 // documents of prehashSumBelow bytes or more
	send := func() bool {
		select {
		case p.results <- batch:
			batch = make([]hashed, 0, prehashBatch)
			return true
		case <-p.stop:
			return false
		}
	}
	// It walks the headers loosely, for speed: a result counts only where
	// the check finds an entry of the same offset and size, so a header
	// misread here costs time, never a wrong answer.
	for {
		blk, _ := bs.peek(blockSize)
		if len(blk) < blockSize || string(blk[257:263]) != "ustar\x00" {
			break
		}
		typ := blk[156]
		if typ == tar.TypeDir {
			bs.discard(blockSize)
			continue
		}
		size, ok := plainOctal(blk[124:136])
		if typ != tar.TypeReg || !ok {
			break
		}
		manifest := string(blk[:len(ManifestName)+1]) == ManifestName+"\x00"
		bs.discard(blockSize)
		off := bs.end - int64(bs.w-bs.r)
		if !manifest && size <= MaxDocumentSize && size <= int64(len(bs.buf)) {
			data, _ := bs.peek(int(size))
			if int64(len(data)) < size {
				break
			}
			h := hashed{off: off, size: size, docErr: checkDocument(data)}
			if size >= prehashSumBelow {
				large++
			}
			if size < prehashSumBelow || large%2 == 0 {
				h.sum, h.hasSum = sha256.Sum256(data), true
			}
			batch = append(batch, h)
			if len(batch) == prehashBatch && !send() {
				return
			}
		}
		if skip := (size + blockSize - 1) &^ (blockSize - 1); skip <= int64(bs.w-bs.r) {
			bs.discard(int(skip))
		} else if _, err := bs.Seek(skip, io.SeekCurrent); err != nil {
			break
		}
	}
	if len(batch) > 0 {
		send()
	}
}

// take returns what the prehasher found of the regular file whose content
// is size bytes at off, if it has. Entries are taken in archive order.
func (p *prehasher) take(off, size int64) (hashed, bool) {
	if p == nil {
		return hashed{}, false
	}
	for {
		for len(p.batch) > 0 && p.batch[0].off < off {
			p.batch = p.batch[1:]
		}
		if len(p.batch) > 0 {
			h := p.batch[0]
			if h.off != off || h.size != size {
				return hashed{}, false
			}
			p.batch = p.batch[1:]
			return h, true
		}
		if p.closed {
			return hashed{}, false
		}
		b, ok := <-p.results
		if !ok {
			p.closed = true
		}
		p.batch = b
	}
}

// end stops the prehasher and waits for it.
func (p *prehasher) end() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
}
