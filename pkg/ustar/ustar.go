// Package ustar writes tar streams byte for byte as archive/tar's Writer
// does, without its cost per header for the plain ones a registry volume
// is made of: an ASCII name that fits USTAR's name and prefix fields,
// whole-second times, no PAX records. archive/tar spends 1.4 µs and six
// allocations on each such header (it weighs every format first); an
// incremental backup of a 4 GB registry writes 220,000 of them in the
// agent and again in the plugin (docs/benchmarks.md, section 9). Any
// other header is formatted by archive/tar itself.
package ustar

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const blockSize = 512

var zeroBlock [blockSize]byte

// Writer is archive/tar's Writer, for WriteHeader, Write, Flush and Close:
// the same bytes, and the same errors where it matters (a short entry, a
// write past an entry's size, an invalid header).
type Writer struct {
	w         io.Writer
	blk       [blockSize]byte
	remaining int64 // content the current entry still owes
	pad       int64 // its padding, written before the next header
	err       error
	slow      bytes.Buffer // archive/tar's header, for what the fast path leaves
}

// NewWriter writes a tar stream to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Flush finishes the current entry's padding, as tar.Writer.Flush.
func (tw *Writer) Flush() error {
	if tw.err != nil {
		return tw.err
	}
	if tw.remaining > 0 {
		return fmt.Errorf("archive/tar: missed writing %d bytes", tw.remaining)
	}
	if _, tw.err = tw.w.Write(zeroBlock[:tw.pad]); tw.err != nil {
		return tw.err
	}
	tw.pad = 0
	return nil
}

// WriteHeader writes h and starts its entry, as tar.Writer.WriteHeader.
func (tw *Writer) WriteHeader(h *tar.Header) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	if !encode(&tw.blk, h) {
		tw.slow.Reset()
		if err := tar.NewWriter(&tw.slow).WriteHeader(h); err != nil {
			return err // not fatal, as archive/tar's
		}
		if _, tw.err = tw.w.Write(tw.slow.Bytes()); tw.err != nil {
			return tw.err
		}
	} else if _, tw.err = tw.w.Write(tw.blk[:]); tw.err != nil {
		return tw.err
	}
	tw.remaining = contentSize(h)
	tw.pad = padding(tw.remaining)
	return nil
}

// Write writes the current entry's content, as tar.Writer.Write: past its
// size, tar.ErrWriteTooLong.
func (tw *Writer) Write(b []byte) (int, error) {
	if tw.err != nil {
		return 0, tw.err
	}
	tooLong := int64(len(b)) > tw.remaining
	if tooLong {
		b = b[:tw.remaining]
	}
	n, err := tw.w.Write(b)
	tw.remaining -= int64(n)
	switch {
	case err != nil:
		tw.err = err
		return n, err
	case n < len(b):
		tw.err = io.ErrShortWrite
		return n, tw.err
	case tooLong:
		return n, tar.ErrWriteTooLong
	}
	return n, nil
}

// Close pads the last entry and writes the two zero blocks of the end, as
// tar.Writer.Close; later calls do nothing.
func (tw *Writer) Close() error {
	if tw.err == tar.ErrWriteAfterClose {
		return nil
	}
	if tw.err != nil {
		return tw.err
	}
	err := tw.Flush()
	for i := 0; i < 2 && err == nil; i++ {
		_, err = tw.w.Write(zeroBlock[:])
	}
	tw.err = tar.ErrWriteAfterClose
	return err
}

// padding is what fills an entry's n bytes of content to a whole block.
func padding(n int64) int64 { return -n & (blockSize - 1) }

// contentSize is how many bytes of content follow h's header.
func contentSize(h *tar.Header) int64 {
	flag := h.Typeflag
	if flag == tar.TypeRegA {
		flag = tar.TypeReg
		if strings.HasSuffix(h.Name, "/") {
			flag = tar.TypeDir
		}
	}
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return 0
	}
	return h.Size
}

// USTAR's fields: offset and length.
const (
	nameOff, nameLen         = 0, 100
	modeOff, numLen          = 100, 8
	uidOff, gidOff           = 108, 116
	sizeOff, bigLen          = 124, 12
	mtimeOff                 = 136
	sumOff                   = 148
	flagOff                  = 156
	linkOff                  = 157
	magicOff                 = 257
	unameOff, ownerLen       = 265, 32
	gnameOff                 = 297
	devMajorOff, devMinorOff = 329, 337
	prefixOff, prefixLen     = 345, 155
)

// encode writes h into blk as archive/tar's USTAR header, if h is one
// that archive/tar writes as USTAR with nothing else; otherwise it
// returns false and leaves h to archive/tar.
func encode(blk *[blockSize]byte, h *tar.Header) bool {
	if !fast(h) {
		return false
	}
	mtime := h.ModTime
	if h.Format == tar.FormatUnknown {
		mtime = mtime.Round(time.Second)
	}
	var sec int64
	if !mtime.IsZero() {
		if mtime.Nanosecond() != 0 || !fitsOctal(bigLen, mtime.Unix()) {
			return false
		}
		sec = mtime.Unix()
	}
	if h.Format != tar.FormatUnknown && (!h.AccessTime.IsZero() || !h.ChangeTime.IsZero()) {
		return false
	}
	name, prefix := h.Name, ""
	if len(name) > nameLen {
		var ok bool
		if prefix, name, ok = splitPath(name); !ok {
			return false
		}
	}
	*blk = zeroBlock
	putString(blk[nameOff:nameOff+nameLen], name)
	putString(blk[linkOff:linkOff+nameLen], h.Linkname)
	putOctal(blk[modeOff:modeOff+numLen], h.Mode)
	putOctal(blk[uidOff:uidOff+numLen], int64(h.Uid))
	putOctal(blk[gidOff:gidOff+numLen], int64(h.Gid))
	putOctal(blk[sizeOff:sizeOff+bigLen], h.Size)
	putOctal(blk[mtimeOff:mtimeOff+bigLen], sec)
	blk[flagOff] = h.Typeflag
	putString(blk[unameOff:unameOff+ownerLen], h.Uname)
	putString(blk[gnameOff:gnameOff+ownerLen], h.Gname)
	putOctal(blk[devMajorOff:devMajorOff+numLen], 0)
	putOctal(blk[devMinorOff:devMinorOff+numLen], 0)
	putString(blk[prefixOff:prefixOff+prefixLen], prefix)
	copy(blk[magicOff:], "ustar\x0000")
	// The checksum counts its own field as spaces; it is zero here.
	putOctal(blk[sumOff:sumOff+7], byteSum(blk)+8*' ')
	blk[sumOff+7] = ' '
	return true
}

// byteSum is the sum of blk's bytes, eight at a time: each word's bytes
// added in 16-bit lanes (64 words of 255s stay under 2^16 in each).
func byteSum(blk *[blockSize]byte) int64 {
	const lanes = 0x00ff00ff00ff00ff
	var acc uint64
	for i := 0; i < blockSize; i += 8 {
		w := binary.LittleEndian.Uint64(blk[i:])
		acc += w&lanes + w>>8&lanes
	}
	acc = acc&0x0000ffff0000ffff + acc>>16&0x0000ffff0000ffff
	return int64(acc&0xffffffff + acc>>32)
}

// fast says h is plain: a type, fields and records that archive/tar would
// write as one USTAR block (its times are checked by encode).
func fast(h *tar.Header) bool {
	switch h.Format {
	case tar.FormatUnknown, tar.FormatUSTAR, tar.FormatPAX:
	default:
		return false
	}
	switch f := h.Typeflag; {
	case f == tar.TypeReg:
		if strings.HasSuffix(h.Name, "/") {
			return false // archive/tar's error
		}
	case f == tar.TypeDir, f == tar.TypeSymlink:
	case 'A' <= f && f <= 'Z' && f != tar.TypeGNULongName && f != tar.TypeGNULongLink && f != tar.TypeGNUSparse:
		// A vendor's type, such as the agent's left-out blob.
	default:
		return false
	}
	return len(h.PAXRecords) == 0 && len(h.Xattrs) == 0 && // archive/tar still writes Xattrs
		ascii(h.Name) && (len(h.Name) <= nameLen || splittable(h.Name)) &&
		ascii(h.Linkname) && len(h.Linkname) <= nameLen &&
		ascii(h.Uname) && len(h.Uname) <= ownerLen &&
		ascii(h.Gname) && len(h.Gname) <= ownerLen &&
		fitsOctal(numLen, h.Mode) && fitsOctal(numLen, int64(h.Uid)) && fitsOctal(numLen, int64(h.Gid)) &&
		fitsOctal(bigLen, h.Size) && h.Devmajor == 0 && h.Devminor == 0
}

// ascii is archive/tar's isASCII: no byte past 0x7f, and no NUL.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0 {
			return false
		}
	}
	return true
}

func splittable(name string) bool {
	_, _, ok := splitPath(name)
	return ok
}

// splitPath is archive/tar's splitUSTARPath: a name too long for USTAR's
// name field, cut at a slash into the prefix field and the name field.
func splitPath(name string) (prefix, suffix string, ok bool) {
	length := len(name)
	if length <= nameLen || !ascii(name) {
		return "", "", false
	} else if length > prefixLen+1 {
		length = prefixLen + 1
	} else if name[length-1] == '/' {
		length--
	}
	i := strings.LastIndex(name[:length], "/")
	nlen := len(name) - i - 1
	if i <= 0 || nlen > nameLen || nlen == 0 || i > prefixLen {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

// fitsOctal is archive/tar's fitsInOctal for a field of n bytes.
func fitsOctal(n int, x int64) bool {
	return x >= 0 && (n >= 22 || x < 1<<(uint(n-1)*3))
}

// putString is archive/tar's formatString for a string that fits.
func putString(b []byte, s string) {
	copy(b, s)
	if len(s) < len(b) {
		b[len(s)] = 0
	}
}

// putOctal is archive/tar's formatOctal for a number that fits: zero
// padded, with room for a NUL.
func putOctal(b []byte, x int64) {
	var digits [24]byte
	s := strconv.AppendInt(digits[:0], x, 8)
	n := len(b) - len(s) - 1
	i := 0
	for ; i < n; i++ {
		b[i] = '0'
	}
	copy(b[i:], s)
	if i+len(s) < len(b) {
		b[i+len(s)] = 0
	}
}
