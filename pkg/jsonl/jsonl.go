// Package jsonl writes and reads the manifests of docker-dtr archives: JSON
// Lines with a header line, one line per entry, and a trailer line holding
// the SHA-256 of every byte before it. Both ways stream: entries are spooled
// to a temporary file while the archive is written, and read one at a time,
// so nothing grows with the number of entries.
package jsonl

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"

	"github.com/docker-dtr/docker-dtr/pkg/anonfile"
)

type trailer struct {
	ManifestSHA256 string `json:"manifestSHA256"`
}

var trailerPrefix = []byte(`{"manifestSHA256"`)

// ErrChecksum means the trailer's checksum does not match the lines.
var ErrChecksum = errors.New("manifest checksum does not match: the manifest is damaged")

// Spool collects entry lines until the manifest is written.
type Spool struct {
	f *os.File
	w *bufio.Writer
	n int64
}

// NewSpool creates the spool's temporary file in $TMPDIR. It has no name
// from the start (pkg/anonfile), so a killed backup leaves nothing.
func NewSpool() (*Spool, error) {
	f, err := anonfile.Create("", "docker-dtr-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("creating manifest spool: %w", err)
	}
	return &Spool{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// Add appends one entry line.
func (s *Spool) Add(entry any) error {
	line, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	return s.AddLine(line)
}

// AddLine appends one entry line that the caller encoded (as
// encoding/json would), without its newline.
func (s *Spool) AddLine(line []byte) error {
	s.n++
	s.w.Write(line)
	return s.w.WriteByte('\n')
}

// Plain says encoding/json writes s as it is between its quotes:
// printable ASCII, none of the characters it escapes. A line made by hand
// of such strings is the line json.Marshal makes.
func Plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

func plainByte(c byte) bool {
	return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// CutString reads a string's characters, after its opening quote, up to
// its closing quote, if they are all Plain's: as json.Unmarshal reads
// them. A line written by hand of Plain strings is read back with it.
func CutString(b []byte) (s, rest []byte, ok bool) {
	for i, c := range b {
		if c == '"' {
			return b[:i], b[i+1:], true
		}
		if !plainByte(c) {
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// CutInt reads an integer as strconv.AppendInt writes it, an optional
// minus and digits with no leading zero: as json.Unmarshal reads it into
// an int64.
func CutInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return 0, nil, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

// Len is the number of entries added.
func (s *Spool) Len() int64 { return s.n }

// TarWriter is the part of a tar writer (archive/tar's, or pkg/ustar's)
// that writes an entry.
type TarWriter interface {
	WriteHeader(*tar.Header) error
	io.Writer
}

// WriteEntry writes the manifest, header first, as one tar entry described
// by hdr (its size is filled in).
func (s *Spool) WriteEntry(tw TarWriter, hdr *tar.Header, header any) error {
	_, err := s.WriteEntrySum(tw, hdr, header)
	return err
}

// WriteEntrySum is WriteEntry that also returns the SHA-256 (hex) of the
// entry's content as written, trailer included: what names the archive.
func (s *Spool) WriteEntrySum(tw TarWriter, hdr *tar.Header, header any) (string, error) {
	if err := s.w.Flush(); err != nil {
		return "", fmt.Errorf("writing manifest spool: %w", err)
	}
	head, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	head = append(head, '\n')
	size, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	sum.Write(head)
	if _, err := io.Copy(sum, io.NewSectionReader(s.f, 0, size)); err != nil {
		return "", fmt.Errorf("reading manifest spool: %w", err)
	}
	tail, _ := json.Marshal(trailer{ManifestSHA256: hex.EncodeToString(sum.Sum(nil))})
	tail = append(tail, '\n')

	hdr.Size = int64(len(head)) + size + int64(len(tail))
	if err := tw.WriteHeader(hdr); err != nil {
		return "", err
	}
	whole := sha256.New()
	w := io.MultiWriter(tw, whole)
	if _, err := w.Write(head); err != nil {
		return "", err
	}
	if _, err := io.Copy(w, io.NewSectionReader(s.f, 0, size)); err != nil {
		return "", err
	}
	if _, err = w.Write(tail); err != nil {
		return "", err
	}
	return hex.EncodeToString(whole.Sum(nil)), nil
}

// Close frees the spool.
func (s *Spool) Close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// Limits bound what a Reader accepts, so that a hostile manifest cannot make
// it allocate without bound.
type Limits struct {
	// HeaderBytes bounds the header line, newline included.
	HeaderBytes int
	// HeaderValues bounds the JSON values in the header line: array elements
	// and object members, at any depth (see CountValues). Decoding can cost
	// far more memory than the line's bytes, a whole struct for a two-byte
	// array element, so the count is what bounds it. 0 means no bound.
	HeaderValues int
	// LineBytes bounds each entry line and the trailer, newline included.
	LineBytes int
}

// Reader reads a manifest: the header when it is made, then Next until
// io.EOF, which comes only once the trailer's checksum has matched.
type Reader struct {
	br      *bufio.Reader
	sum     hash.Hash
	maxLine int
	done    bool
}

// NewReader reads the header line into header, strictly: unknown fields are
// errors. Lines over their limits are errors, read no further than the
// limit.
func NewReader(r io.Reader, header any, lim Limits) (*Reader, error) {
	if lim.HeaderBytes <= 0 || lim.LineBytes <= 0 {
		return nil, errors.New("manifest reader: no line limits")
	}
	mr := &Reader{br: bufio.NewReaderSize(r, 64<<10), sum: sha256.New(), maxLine: lim.LineBytes}
	line, err := mr.line(lim.HeaderBytes)
	if err != nil {
		return nil, fmt.Errorf("manifest header: %w", err)
	}
	if lim.HeaderValues > 0 {
		if err := MaxValues(line, lim.HeaderValues); err != nil {
			return nil, fmt.Errorf("manifest header: %w", err)
		}
	}
	if err := StrictUnmarshal(line, header); err != nil {
		return nil, fmt.Errorf("manifest header: %w", err)
	}
	mr.sum.Write(line)
	return mr, nil
}

// CheckHeader tells a writer, before it writes anything, whether a Reader
// with these limits will accept header: a manifest that cannot be read back
// is worse than a backup that stops with the reason.
func CheckHeader(header any, lim Limits) error {
	line, err := json.Marshal(header)
	if err != nil {
		return err
	}
	if len(line)+1 > lim.HeaderBytes {
		return fmt.Errorf("manifest header of %d bytes, over the %d byte limit", len(line)+1, lim.HeaderBytes)
	}
	if lim.HeaderValues > 0 {
		if err := MaxValues(line, lim.HeaderValues); err != nil {
			return fmt.Errorf("manifest header: %w", err)
		}
	}
	return nil
}

// CountValues returns an upper bound of the values in a JSON text: every
// array element and object member, at any depth, counted by the brackets,
// braces and commas outside strings. It reads invalid JSON too (the decoder
// says what is wrong with it), and never more than data.
func CountValues(data []byte) int {
	n := 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[', c == '{', c == ',':
			n++
		}
	}
	return n
}

// MaxValues refuses a JSON text of more than limit values (CountValues).
func MaxValues(data []byte, limit int) error {
	if n := CountValues(data); n > limit {
		return fmt.Errorf("more than %d JSON values (%d)", limit, n)
	}
	return nil
}

// line returns the next line including its newline. It may be in the
// reader's buffer, valid until the next read.
func (mr *Reader) line(limit int) ([]byte, error) {
	var buf []byte
	for first := true; ; first = false {
		chunk, err := mr.br.ReadSlice('\n')
		if first && err == nil && len(chunk) <= limit {
			return chunk, nil // most lines: in the buffer whole
		}
		buf = append(buf, chunk...)
		if len(buf) > limit {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, errors.New("manifest ends without its trailer")
			}
			return nil, errors.New("manifest ends in the middle of a line")
		default:
			return nil, err
		}
	}
}

// Next decodes the next entry into v, or returns io.EOF after a valid
// trailer.
func (mr *Reader) Next(v any) error {
	line, err := mr.NextLine()
	if err != nil {
		return err
	}
	if err := StrictUnmarshal(line, v); err != nil {
		return fmt.Errorf("manifest entry: %w", err)
	}
	return nil
}

// NextLine returns the next entry's line, newline included, for a caller
// that decodes it itself (as strictly as StrictUnmarshal), or io.EOF after
// a valid trailer. The line is valid until the next call.
func (mr *Reader) NextLine() ([]byte, error) {
	if mr.done {
		return nil, io.EOF
	}
	line, err := mr.line(mr.maxLine)
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(line, trailerPrefix) {
		var t trailer
		if err := StrictUnmarshal(line, &t); err != nil {
			return nil, fmt.Errorf("manifest trailer: %w", err)
		}
		if t.ManifestSHA256 != hex.EncodeToString(mr.sum.Sum(nil)) {
			return nil, ErrChecksum
		}
		if _, err := mr.br.ReadByte(); err != io.EOF {
			return nil, errors.New("data after the manifest trailer")
		}
		mr.done = true
		return nil, io.EOF
	}
	mr.sum.Write(line)
	return line, nil
}

// StrictUnmarshal decodes exactly one JSON value with no unknown fields.
// Its errors are never io.EOF, which to a Reader's callers means the end of
// a manifest whose checksum matched.
func StrictUnmarshal(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("no JSON value on the line")
		}
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value on a line")
	}
	return nil
}
