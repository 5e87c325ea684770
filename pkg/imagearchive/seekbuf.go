package imagearchive

import (
	"errors"
	"io"
)

// seekBuffer reads a file through a buffer that Seek moves within:
// stepping over an archive's entries (locate) seeks twice and reads
// twice an entry, four system calls on a bare *os.File, most of them
// for directories and link files of a few bytes that one buffer holds
// by the hundred. On a 4 GB volume's base (214,000 entries) that was
// 1.8 CPU-s of an incremental backup (docs/benchmarks.md, section 9).
type seekBuffer struct {
	f    io.ReadSeeker
	buf  []byte
	r, w int   // buf[r:w] is unread
	end  int64 // the file's offset of buf[w]
}

func newSeekBuffer(f io.ReadSeeker, size int) (*seekBuffer, error) {
	end, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	return &seekBuffer{f: f, buf: make([]byte, size), end: end}, nil
}

func (s *seekBuffer) Read(p []byte) (int, error) {
	if s.r == s.w {
		if len(p) >= len(s.buf) {
			n, err := s.f.Read(p)
			s.end += int64(n)
			return n, err
		}
		n, err := s.f.Read(s.buf)
		s.r, s.w = 0, n
		s.end += int64(n)
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	return n, nil
}

// Seek moves within what the buffer holds unread; anywhere else it
// seeks the file and empties the buffer.
func (s *seekBuffer) Seek(offset int64, whence int) (int64, error) {
	pos := s.end - int64(s.w-s.r) // the reader's position
	var to int64
	switch whence {
	case io.SeekStart:
		to = offset
	case io.SeekCurrent:
		to = pos + offset
	default:
		s.r, s.w = 0, 0
		end, err := s.f.Seek(offset, whence)
		s.end = end
		return end, err
	}
	if to < 0 {
		return pos, errors.New("seek before the start of the file")
	}
	if to >= pos && to <= s.end {
		s.r += int(to - pos)
		return to, nil
	}
	end, err := s.f.Seek(to, io.SeekStart)
	if err != nil {
		return pos, err
	}
	s.r, s.w, s.end = 0, 0, end
	return end, nil
}
