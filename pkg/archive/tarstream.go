package archive

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// tarStream reads a tar archive's entries as archive/tar does, faster. The
// plain ustar headers of regular files and directories, all that the writer
// makes, it parses itself. At the first other header (a PAX or GNU header, a
// link, a zero block, a damaged or unusual field, the end of the file) it
// hands the rest of the archive to archive/tar, from that header on. This
// reads exactly what archive/tar alone would read: archive/tar keeps no
// state from one plain ustar entry to the next, and what the fast path
// accepts archive/tar parses to the same name, type and size.
type tarStream struct {
	bs   *bufSeeker
	tr   *tar.Reader // archive/tar, once the fast path has handed over
	hdr  tar.Header
	left int64 // content of the current entry not read yet
	pad  int64 // padding after it
	err  error // sticky, as archive/tar's
}

// newTarStream reads bs; slow hands everything to archive/tar from the
// start, for tests that compare the two.
func newTarStream(bs *bufSeeker, slow bool) *tarStream {
	s := &tarStream{bs: bs}
	if slow {
		s.tr = tar.NewReader(bs)
	}
	return s
}

// Next is tar.Reader.Next. The header it returns is valid until the next
// call; only Name, Typeflag, Size and PAXRecords are meaningful.
func (s *tarStream) Next() (*tar.Header, error) {
	if s.tr != nil {
		return s.tr.Next()
	}
	if s.err != nil {
		return nil, s.err
	}
	if err := s.skip(s.left); err != nil {
		s.err = err
		return nil, err
	}
	s.left = 0
	if s.pad > 0 {
		got, err := s.bs.peek(int(s.pad))
		if len(got) < int(s.pad) {
			if err == nil || errors.Is(err, io.ErrNoProgress) {
				err = io.EOF
			}
			s.err = err // tryReadFull's io.EOF: archive/tar reports a cut padding as the end
			return nil, err
		}
		s.bs.discard(int(s.pad))
		s.pad = 0
	}
	blk, _ := s.bs.peek(blockSize)
	if len(blk) < blockSize || !parseUSTAR(blk, &s.hdr) {
		s.tr = tar.NewReader(s.bs)
		return s.tr.Next()
	}
	s.bs.discard(blockSize)
	if s.hdr.Typeflag == tar.TypeReg {
		s.left = s.hdr.Size
		s.pad = -s.left & (blockSize - 1)
	}
	return &s.hdr, nil
}

// skip is archive/tar's discard: seek to the last byte, read it.
func (s *tarStream) skip(n int64) error {
	if n == 0 {
		return nil
	}
	if n <= int64(s.bs.w-s.bs.r) {
		s.bs.discard(int(n))
		return nil
	}
	if n > 1 {
		if _, err := s.bs.Seek(n-1, io.SeekCurrent); err != nil {
			return err
		}
	}
	var one [1]byte
	if _, err := io.ReadFull(s.bs, one[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// Read reads the current entry's content.
func (s *tarStream) Read(p []byte) (int, error) {
	if s.tr != nil {
		return s.tr.Read(p)
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.bs.Read(p)
	s.left -= int64(n)
	switch {
	case errors.Is(err, io.EOF) && s.left > 0:
		return n, io.ErrUnexpectedEOF
	case err == nil && s.left == 0:
		return n, io.EOF
	}
	return n, err
}

// content returns the rest of the current entry's content, which must fit
// in buf's capacity or the stream's buffer. The slice is valid until the
// next call.
func (s *tarStream) content(buf *[]byte) ([]byte, error) {
	if s.tr == nil && s.left <= int64(len(s.bs.buf)) {
		n := int(s.left)
		got, err := s.bs.peek(n)
		if len(got) < n {
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrNoProgress) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		s.bs.discard(n)
		s.left = 0
		return got, nil
	}
	b := bytes.NewBuffer((*buf)[:0])
	_, err := io.Copy(b, s)
	*buf = b.Bytes()
	return *buf, err
}

// pos is the offset in the file of what is read next.
func (s *tarStream) pos() (int64, error) { return s.bs.Seek(0, io.SeekCurrent) }

var (
	ustarMagic  = []byte("ustar\x00")
	starTrailer = []byte("tar\x00")
)

// parseUSTAR parses a plain ustar header of a regular file or directory
// into hdr, or reports false for anything else, which archive/tar then
// reads (and may refuse).
func parseUSTAR(b []byte, hdr *tar.Header) bool {
	_ = b[blockSize-1]
	typ := b[156]
	if typ != tar.TypeReg && typ != tar.TypeDir {
		return false
	}
	if !bytes.Equal(b[257:263], ustarMagic) || bytes.Equal(b[508:512], starTrailer) {
		return false
	}
	sum, ok := plainOctal(b[148:156])
	if !ok || sum != int64(unsignedChecksum(b)) {
		return false
	}
	// Every numeric field archive/tar parses must be plain octal, or
	// archive/tar decides.
	if !writerOctal(b) {
		for _, f := range [...][2]int{{100, 108}, {108, 116}, {116, 124}, {136, 148}, {329, 337}, {337, 345}} {
			if _, ok := plainOctal(b[f[0]:f[1]]); !ok {
				return false
			}
		}
	}
	size, ok := plainOctal(b[124:136])
	if !ok {
		return false
	}
	name := cstring(b[0:100])
	prefix := cstring(b[345:500])
	*hdr = tar.Header{Typeflag: typ, Size: size, Format: tar.FormatUSTAR}
	if len(prefix) > 0 {
		hdr.Name = string(prefix) + "/" + string(name)
	} else {
		hdr.Name = string(name)
	}
	return true
}

// plainOctal parses a numeric field as archive/tar does, but only where the
// field is octal digits with leading and trailing spaces or NULs.
func plainOctal(b []byte) (int64, bool) {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	var v int64
	for _, c := range b[i:j] {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v<<3 | int64(c-'0')
	}
	return v, true
}

func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// unsignedChecksum is the header checksum: the sum of every byte, the
// checksum field counted as spaces. (archive/tar also accepts the signed
// sum; such a header takes the slow path.)
func unsignedChecksum(b []byte) uint32 {
	const lanes = 0x00ff00ff00ff00ff
	var acc uint64 // four 16-bit sums: 64 words of at most 2*255 each fit
	for i := 0; i < blockSize; i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		acc += x&lanes + (x>>8)&lanes
	}
	acc = acc&0x0000ffff0000ffff + (acc>>16)&0x0000ffff0000ffff
	sum := uint32(acc) + uint32(acc>>32)
	for _, c := range b[148:156] {
		sum -= uint32(c)
	}
	return sum + 8*' '
}

// discardContent reads the rest of the current entry's content, to learn
// that the archive holds all of it.
func (s *tarStream) discardContent() error {
	if s.tr != nil {
		_, err := io.Copy(io.Discard, s.tr)
		return err
	}
	err := s.skip(s.left)
	s.left = 0
	return err
}

// writerOctal reports, quickly, that the numeric fields other than size and
// checksum are as archive/tar's writer writes them: octal digits and a NUL.
func writerOctal(b []byte) bool {
	const digits7, mask7 = 0x0030303030303030, 0xfff8f8f8f8f8f8f8
	for _, at := range [...]int{100, 108, 116, 329, 337} { // mode, uid, gid, devmajor, devminor
		if binary.LittleEndian.Uint64(b[at:])&mask7 != digits7 {
			return false
		}
	}
	// mtime: 11 digits and a NUL
	return binary.LittleEndian.Uint64(b[136:])&0xf8f8f8f8f8f8f8f8 == 0x3030303030303030 &&
		binary.LittleEndian.Uint32(b[144:])&0xfff8f8f8 == 0x00303030
}
