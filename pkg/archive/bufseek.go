package archive

import (
	"io"
	"os"
)

// bufSeeker buffers reads of a file but keeps Seek, which archive/tar uses to
// skip entry content and which scan uses to learn where the manifest starts.
// Without it, tar reads each 512-byte block with its own system call.
type bufSeeker struct {
	f    *os.File
	buf  []byte
	r, w int   // unread data is buf[r:w]
	end  int64 // file offset just past buf[w-1]
}

func newBufSeeker(f *os.File) (*bufSeeker, error) {
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &bufSeeker{f: f, buf: make([]byte, bufferSize(f)), end: off}, nil
}

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

func (b *bufSeeker) Read(p []byte) (int, error) {
	if b.r == b.w {
		if len(p) >= len(b.buf) {
			n, err := b.f.Read(p)
			b.end += int64(n)
			return n, err
		}
		n, err := b.f.Read(b.buf)
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
		b.r, b.w = 0, 0
		n, err := b.f.Seek(offset, whence)
		b.end = n
		return n, err
	}
	if start := b.end - int64(b.w); abs >= start && abs <= b.end {
		b.r = int(abs - start)
		return abs, nil
	}
	n, err := b.f.Seek(abs, io.SeekStart)
	if err != nil {
		return cur, err
	}
	b.r, b.w, b.end = 0, 0, n
	return n, nil
}
