// Package zstdstream compresses a backup as it is written and decompresses
// it as it is read, as a stream stage: a compressed backup is the zstd
// stream of the plain tar, which 'zstd -dc' reads, and is recognised by
// its magic bytes, never by its name.
package zstdstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// magic starts every zstd frame (RFC 8878, 3.1.1). A tar never starts
// with it (its first bytes are an entry's name), nor does an OpenPGP
// message (its first byte has the high bit set).
var magic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// MaxWindow is the largest window a frame may ask the decoder to hold:
// what 'zstd --ultra -22' and '--long=27' use, 16 times what NewWriter
// does. A frame that asks for more is refused as corrupt before it is
// allocated.
const MaxWindow = 1 << 27

// MagicLen is how many bytes IsCompressed needs.
const MagicLen = 4

// ErrTruncated is the error of a stream that ends inside a frame: the file
// was cut short. ErrCorrupt is that of one whose bytes do not decode or
// whose checksum does not match.
var (
	ErrTruncated = errors.New("its zstd stream ends early: the file is truncated")
	ErrCorrupt   = errors.New("its zstd stream is corrupt")
)

// IsCompressed says whether prefix, the first bytes of a file, starts a
// zstd stream.
func IsCompressed(prefix []byte) bool { return bytes.HasPrefix(prefix, magic) }

// Detect reads the first bytes of r and says whether they start a zstd
// stream; the reader it returns reads r from its start again.
func Detect(r io.Reader) (io.Reader, bool, error) {
	head := make([]byte, MagicLen)
	n, err := io.ReadFull(r, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, false, err
	}
	head = head[:n]
	return io.MultiReader(bytes.NewReader(head), r), IsCompressed(head), nil
}

// NewWriter compresses into w at zstd's fastest level (1), each frame with
// its content checksum, so that a changed byte is found when read. Its
// Close ends the stream; it does not close w. The fastest level, for a
// backup as for a stream that crosses a link once: on DTR-shaped data
// (ids, digests and tar headers) the default level's output is 0.5 %
// smaller, for 1.7 times the encoder's time (docs/benchmarks.md, section
// 10).
func NewWriter(w io.Writer) (*Writer, error) {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	return &Writer{enc: enc}, nil
}

// Writer is a zstd stream being written.
type Writer struct {
	enc *zstd.Encoder
}

func (w *Writer) Write(p []byte) (int, error) { return w.enc.Write(p) }

// Close writes the rest of the stream and its end.
func (w *Writer) Close() error { return w.enc.Close() }

// Abort frees the encoder and writes nothing more to w: an unfinished
// stream is not given an end that would make it look whole.
func (w *Writer) Abort() {
	w.enc.Reset(io.Discard)
	w.enc.Close()
}

// NewReader decompresses r, which Close closes with closer. Its errors
// name the file, name, and say whether it was cut short (ErrTruncated) or
// is corrupt (ErrCorrupt); an error of r itself (a decryption that
// failed) is returned as it is. The decoder works a little ahead of the
// reader, on goroutines of its own; Close stops them.
func NewReader(r io.Reader, name string, closer io.Closer) (io.ReadCloser, error) {
	src := &source{r: r}
	dec, err := zstd.NewReader(src, zstd.WithDecoderMaxWindow(MaxWindow))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (%v)", name, ErrCorrupt, err)
	}
	return &reader{dec: dec, src: src, name: name, closer: closer}, nil
}

// source is what the decoder reads, keeping its error apart from the
// decoder's own.
type source struct {
	r   io.Reader
	mu  sync.Mutex
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
	}
	return n, err
}

func (s *source) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

type reader struct {
	dec    *zstd.Decoder
	src    *source
	name   string
	closer io.Closer
	err    error // sticky
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.dec.Read(p)
	if err != nil && err != io.EOF {
		err = r.explain(err)
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// explain says what a decoding error means: the reader under the decoder
// failed (its own error), the stream ended inside a frame, or its bytes
// are wrong.
func (r *reader) explain(err error) error {
	if serr := r.src.failed(); serr != nil {
		return serr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w", r.name, ErrTruncated)
	}
	return fmt.Errorf("%s: %w (%v)", r.name, ErrCorrupt, err)
}

// Close stops the decoder and closes what it reads.
func (r *reader) Close() error {
	r.dec.Close()
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}
