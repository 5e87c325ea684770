package archive

import (
	"errors"
	"io"
	"os"
)

// bufSeeker buffers reads of a file but keeps Seek, which archive/tar uses to
// skip entry content and which scan uses to learn where the manifest starts.
// Without it, tar reads each 512-byte block with its own system call.
type bufSeeker struct {
	f     *os.File
	src   io.Reader // instead of f: a stream, whose Seek only skips forward
	pread bool      // read with ReadAt, leaving f's offset alone
	buf   []byte
	r, w  int   // unread data is buf[r:w]
	end   int64 // file offset just past buf[w-1]
}

func newBufSeeker(f *os.File) (*bufSeeker, error) {
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &bufSeeker{f: f, buf: make([]byte, bufferSize(f)), end: off}, nil
}

// NewFileSeeker reads f from its offset through a buffer that Seek moves
// within: archive/tar, given it, steps over a file's entries without two
// seeks and two reads of its own for each. pkg/imagearchive finds an
// image backup's manifest so.
func NewFileSeeker(f *os.File) (io.ReadSeeker, error) { return newBufSeeker(f) }

// bufferSize is 1 MiB, or what the rest of a regular file holds when that is
// less: a small file needs no large buffer.
func bufferSize(r io.Reader) int {
	size := int64(1 << 20)
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			off, err := f.Seek(0, io.SeekCurrent)
			if err == nil {
				size = min(size, max(st.Size()-off, 0)+4<<10)
			}
		}
	}
	return int(size)
}

// newBufSeekerAt reads f from off with ReadAt, so that it can read f
// alongside another reader.
func newBufSeekerAt(f *os.File, off int64) *bufSeeker {
	size := 1 << 20
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = int(min(int64(size), max(st.Size()-off, 0)+4<<10))
	}
	return &bufSeeker{f: f, pread: true, buf: make([]byte, size), end: off}
}

// newBufStream reads a stream: Seek moves forward only, by reading.
func newBufStream(r io.Reader) *bufSeeker {
	return &bufSeeker{src: r, buf: make([]byte, 1<<20)}
}

func (b *bufSeeker) read(p []byte) (int, error) {
	if b.src != nil {
		return b.src.Read(p)
	}
	if !b.pread {
		return b.f.Read(p)
	}
	n, err := b.f.ReadAt(p, b.end)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (b *bufSeeker) Read(p []byte) (int, error) {
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			n, err := b.read(p)
			b.end += int64(n)
			return n, err
		}
		n, err := b.read(b.buf)
		b.r, b.w = 0, n
		b.end += int64(n)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

func (b *bufSeeker) Seek(offset int64, whence int) (int64, error) {
	cur := b.end - int64(b.w-b.r)
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = cur + offset
	default:
		if b.pread || b.src != nil {
			return cur, errors.New("bufSeeker: unsupported whence")
		}
		b.r, b.w = 0, 0
		n, err := b.f.Seek(offset, whence)
		b.end = n
		return n, err
	}
	if start := b.end - int64(b.w); abs >= start && abs <= b.end {
		b.r = int(abs - start)
		return abs, nil
	}
	if b.src != nil {
		return b.skipTo(cur, abs)
	}
	if b.pread {
		if abs < 0 {
			return cur, errors.New("bufSeeker: negative position")
		}
		b.r, b.w, b.end = 0, 0, abs
		return abs, nil
	}
	n, err := b.f.Seek(abs, io.SeekStart)
	if err != nil {
		return cur, err
	}
	b.r, b.w, b.end = 0, 0, n
	return n, nil
}

// peek returns the next n bytes without consuming them, reading more of the
// file as needed. It returns fewer only at the end of the file or on an
// error; n must not exceed the buffer's size.
func (b *bufSeeker) peek(n int) ([]byte, error) {
	if b.w-b.r >= n {
		return b.buf[b.r : b.r+n], nil
	}
	if b.r > 0 {
		m := copy(b.buf, b.buf[b.r:b.w])
		b.r, b.w = 0, m
	}
	for b.w < n {
		m, err := b.read(b.buf[b.w:])
		b.w += m
		b.end += int64(m)
		if err != nil {
			return b.buf[:b.w], err
		}
		if m == 0 {
			return b.buf[:b.w], io.ErrNoProgress
		}
	}
	return b.buf[:n], nil
}

// discard consumes n bytes that peek has returned.
func (b *bufSeeker) discard(n int) { b.r += n }

// skipTo moves a stream forward to abs by reading. As a file's Seek, it
// may go past the end: the next read then finds it.
func (b *bufSeeker) skipTo(cur, abs int64) (int64, error) {
	if abs < cur {
		return cur, errors.New("bufSeeker: a stream cannot go back")
	}
	b.r, b.w = 0, 0
	_, err := io.CopyN(io.Discard, b.src, abs-b.end)
	if err != nil && !errors.Is(err, io.EOF) {
		return cur, err
	}
	b.end = abs
	return abs, nil
}
