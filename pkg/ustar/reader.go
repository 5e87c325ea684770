package ustar

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"time"
)

// Reader is archive/tar's Reader, for Next and Read: the same headers,
// content and errors, without its cost for a plain USTAR header (2 µs
// and 15 allocations in archive/tar). Any other entry (PAX or GNU
// records, a header that is not well formed) is read by archive/tar; a
// sparse one hands it the rest of the stream.
type Reader struct {
	r         io.Reader
	blk       [blockSize]byte
	remaining int64 // content of the current entry not yet read
	pad       int64 // its padding
	slow      *tar.Reader
	slowNow   bool // the current entry is slow's
	slowAll   bool // slow reads the rest of the stream
	err       error
}

// NewReader reads a tar stream from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next advances to the next entry, as tar.Reader.Next.
func (tr *Reader) Next() (*tar.Header, error) {
	if tr.err != nil {
		return nil, tr.err
	}
	if tr.slowAll {
		return tr.slow.Next()
	}
	hdr, err := tr.next()
	tr.err = err
	return hdr, err
}

func (tr *Reader) next() (*tar.Header, error) {
	if tr.slowNow {
		// The rest of slow's entry; its padding is ours to skip.
		if _, err := io.Copy(io.Discard, tr.slow); err != nil {
			return nil, err
		}
		tr.slowNow = false
	} else if err := skip(tr.r, tr.remaining); err != nil {
		return nil, err
	}
	if _, err := tryReadFull(tr.r, tr.blk[:tr.pad]); err != nil {
		return nil, err
	}
	tr.remaining, tr.pad = 0, 0
	if _, err := io.ReadFull(tr.r, tr.blk[:]); err != nil {
		return nil, err
	}
	if tr.blk == zeroBlock {
		if _, err := io.ReadFull(tr.r, tr.blk[:]); err != nil {
			return nil, err
		}
		if tr.blk == zeroBlock {
			return nil, io.EOF
		}
		return nil, tar.ErrHeader
	}
	if hdr, ok := decode(&tr.blk); ok {
		tr.remaining = contentSize(hdr)
		tr.pad = padding(tr.remaining)
		return hdr, nil
	}
	// archive/tar reads this entry, from its first block on.
	tr.slow = tar.NewReader(io.MultiReader(bytes.NewReader(append([]byte(nil), tr.blk[:]...)), tr.r))
	hdr, err := tr.slow.Next()
	if err != nil {
		return nil, err
	}
	if hdr.Typeflag == tar.TypeGNUSparse || sparseRecords(hdr) {
		// Its data on the stream is not its size: archive/tar goes on.
		tr.slowAll = true
		return hdr, nil
	}
	tr.slowNow = true
	tr.pad = padding(contentSize(hdr))
	return hdr, nil
}

func sparseRecords(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// ContentFollows says that the current entry's content is the next bytes
// of the stream, as many as its header's size says: for every entry but a
// sparse file's, whose stream holds its data without the holes.
func (tr *Reader) ContentFollows() bool { return !tr.slowAll }

// Read reads the current entry's content, as tar.Reader.Read.
func (tr *Reader) Read(b []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if tr.slowAll || tr.slowNow {
		n, err := tr.slow.Read(b)
		if err != nil && err != io.EOF {
			tr.err = err
		}
		return n, err
	}
	if int64(len(b)) > tr.remaining {
		b = b[:tr.remaining]
	}
	var n int
	var err error
	if len(b) > 0 {
		n, err = tr.r.Read(b)
		tr.remaining -= int64(n)
	}
	switch {
	case err == io.EOF && tr.remaining > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && tr.remaining == 0:
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		tr.err = err
	}
	return n, err
}

// skip reads past n bytes, as archive/tar's discard on a stream; through
// a bufio.Reader's Discard, without copying them out, when r is one.
func skip(r io.Reader, n int64) error {
	if n == 0 {
		return nil
	}
	if d, ok := r.(interface{ Discard(int) (int, error) }); ok {
		for n > 0 {
			m, err := d.Discard(int(min(n, 1<<30)))
			n -= int64(m)
			if err == io.EOF && n > 0 {
				return io.ErrUnexpectedEOF
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	copied, err := io.CopyN(io.Discard, r, n)
	if err == io.EOF && copied < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// tryReadFull is archive/tar's: an end within the padding is an end.
func tryReadFull(r io.Reader, b []byte) (n int, err error) {
	for len(b) > n && err == nil {
		var nn int
		nn, err = r.Read(b[n:])
		n += nn
	}
	if len(b) == n && err == io.EOF {
		err = nil
	}
	return n, err
}

// decode reads blk as archive/tar would read a plain USTAR header (a
// good checksum, the ustar magic, ASCII, numbers in octal each ending in
// NUL, an ordinary or a vendor's type), and says whether it was one.
func decode(blk *[blockSize]byte) (*tar.Header, bool) {
	if string(blk[magicOff:magicOff+6]) != "ustar\x00" || string(blk[508:512]) == "tar\x00" {
		return nil, false // not USTAR, or star's
	}
	var or uint64
	for i := 0; i < blockSize; i += 8 {
		or |= binary.LittleEndian.Uint64(blk[i:])
	}
	if or&0x8080808080808080 != 0 {
		return nil, false // not ASCII: archive/tar says FormatUnknown
	}
	sum, ok := octal(blk[sumOff : sumOff+8])
	if !ok || sum != byteSum(blk)-byteSumOf(blk[sumOff:sumOff+8])+8*' ' {
		return nil, false
	}
	flag := blk[flagOff]
	switch {
	case flag == tar.TypeReg, flag == tar.TypeDir, flag == tar.TypeSymlink:
	case 'A' <= flag && flag <= 'Z' && flag != tar.TypeGNULongName && flag != tar.TypeGNULongLink && flag != tar.TypeGNUSparse:
	default:
		return nil, false
	}
	var nums [7]int64
	for i, f := range [7][2]int{{sizeOff, bigLen}, {modeOff, numLen}, {uidOff, numLen}, {gidOff, numLen},
		{mtimeOff, bigLen}, {devMajorOff, numLen}, {devMinorOff, numLen}} {
		b := blk[f[0] : f[0]+f[1]]
		if b[len(b)-1] != 0 {
			return nil, false // archive/tar says FormatUnknown
		}
		if nums[i], ok = octal(b); !ok {
			return nil, false
		}
	}
	name := blk[nameOff : nameOff+nameLen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	var full []byte
	if prefix := blk[prefixOff : prefixOff+prefixLen]; prefix[0] != 0 {
		if i := bytes.IndexByte(prefix, 0); i >= 0 {
			prefix = prefix[:i]
		}
		var scratch [prefixLen + 1 + nameLen]byte
		full = append(append(append(scratch[:0], prefix...), '/'), name...)
	} else {
		full = name
	}
	hdr := &tar.Header{
		Typeflag: flag,
		Name:     string(full),
		Linkname: cString(blk[linkOff : linkOff+nameLen]),
		Size:     nums[0], Mode: nums[1], Uid: int(nums[2]), Gid: int(nums[3]),
		ModTime:  time.Unix(nums[4], 0),
		Uname:    cString(blk[unameOff : unameOff+ownerLen]),
		Gname:    cString(blk[gnameOff : gnameOff+ownerLen]),
		Devmajor: nums[5], Devminor: nums[6],
		Format: tar.FormatUSTAR,
	}
	return hdr, true
}

func byteSumOf(b []byte) int64 {
	var s int64
	for _, c := range b {
		s += int64(c)
	}
	return s
}

// octal is archive/tar's parseOctal (spaces and NULs trimmed at both
// ends, then up to the first NUL, in base 8), for the fields of a header
// block, which are too short to overflow; false where archive/tar fails.
func octal(b []byte) (int64, bool) {
	b = bytes.Trim(b, " \x00")
	if len(b) == 0 {
		return 0, true
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var x int64
	for _, c := range b {
		if c < '0' || c > '7' {
			return 0, false
		}
		x = x<<3 | int64(c-'0')
	}
	return x, true
}

// cString is archive/tar's parseString: up to the first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
