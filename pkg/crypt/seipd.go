package crypt

import (
	"crypto/cipher"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"hash"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// mdcChunk is how much ciphertext mdcReader decrypts at a time: large enough
// that the AES calls of a chunk overlap and that handing a chunk to the
// hashing goroutine costs nothing, small enough that its buffers stay at
// about 1 MiB.
const mdcChunk = 256 << 10

// mdcBuffers is how many decrypted chunks may wait for their hash.
const mdcBuffers = 4

// mdcTrailer is the MDC packet that ends the plaintext of a SEIPD v1 packet:
// tag 0xD3, length 20, the SHA-1 (RFC 4880 section 5.14).
const mdcTrailer = 2 + sha1.Size

var errMDC = errors.New("MDC check failed")

// mdcReader decrypts the contents of a SEIPD v1 packet, faster than
// go-crypto, whose OpenPGP CFB goes a byte at a time and hashes on the same
// goroutine. SEIPD v1 is plain CFB with a zero IV over
// prefix || message || MDC packet (no resync), so the block cipher runs on
// ciphertext only: a whole chunk's AES calls are independent of each other.
// The SHA-1 of the MDC runs on other goroutines, a chunk at a time in
// order, beside the decryption of the next chunks.
//
// Read returns the message (the prefix and the MDC packet removed) and
// io.EOF at its end, not authenticated; Close reads what is left and
// reports whether the MDC matched, as go-crypto's reader does. The key has
// already passed the quick check of the prefix (head.quickCheck).
type mdcReader struct {
	src   io.Reader // the packet's contents, the prefix included
	block cipher.Block
	multi *aesBlocks // AES many blocks a call, where there is assembly
	chunk int

	iv   []byte // the last ciphertext block decrypted
	ks   []byte // keystream scratch
	bufs [mdcBuffers][]byte
	busy [mdcBuffers]chan struct{} // closed when a buffer is hashed
	next int                       // the buffer to fill next

	h    hash.Hash
	last chan struct{} // closed when everything handed out so far is hashed

	tail  [mdcTrailer]byte // the last bytes decrypted: maybe the MDC packet
	ntail int
	skip  int    // prefix bytes still to leave out of the message
	total int64  // bytes decrypted
	cur   []byte // decrypted message not read yet
	err   error  // io.EOF at the end, or what stopped the reading
	mdc   error  // the MDC's verdict, set with err = io.EOF
}

// newMDCReader returns nil for a cipher the standard library has not, and
// for chunk 0 (the tests' way to ask for go-crypto's reader).
func newMDCReader(src io.Reader, cf packet.CipherFunction, key []byte, chunk int) *mdcReader {
	block := stdBlock(cf, key)
	if block == nil || chunk <= 0 {
		return nil
	}
	bs := block.BlockSize()
	chunk = max(bs, chunk-chunk%bs)
	r := &mdcReader{
		src:   src,
		block: block,
		chunk: chunk,
		iv:    make([]byte, bs),
		ks:    make([]byte, chunk),
		h:     sha1.New(),
		skip:  bs + 2,
	}
	if cf == packet.CipherAES128 || cf == packet.CipherAES192 || cf == packet.CipherAES256 {
		r.multi = newAESBlocks(key)
	}
	return r
}

func (r *mdcReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.fill()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close reads to the end (any packets after the literal data are covered
// by the MDC too) and checks the MDC.
func (r *mdcReader) Close() error {
	for r.err == nil {
		r.cur = nil
		r.fill()
	}
	if r.err != io.EOF {
		return r.err
	}
	return r.mdc
}

// fill decrypts the next chunk into r.cur, or sets r.err.
func (r *mdcReader) fill() {
	i := r.next
	r.next = (r.next + 1) % mdcBuffers
	if r.busy[i] != nil {
		<-r.busy[i]
	}
	if r.bufs[i] == nil {
		r.bufs[i] = make([]byte, mdcTrailer+r.chunk)
	}
	buf := r.bufs[i]
	t := copy(buf, r.tail[:r.ntail])
	n, err := readChunk(r.src, buf[t:t+r.chunk])
	if err != nil && err != io.EOF {
		r.err = err
		return
	}
	r.decrypt(buf[t : t+n])
	r.total += int64(n)
	all := buf[:t+n]
	if err == nil {
		// Keep back what may be the MDC packet until more follows.
		out := all[:len(all)-min(len(all), mdcTrailer)]
		r.ntail = copy(r.tail[:], all[len(out):])
		if len(out) > 0 {
			r.hash(i, out)
			r.deliver(out)
		}
		return
	}
	// The end: the last bytes are the MDC packet.
	if r.total < int64(len(r.iv)+2+mdcTrailer) {
		r.err = io.ErrUnexpectedEOF // shorter than a prefix and an MDC
		return
	}
	out := all[:len(all)-mdcTrailer]
	trailer := all[len(out):]
	if len(out) > 0 {
		r.hash(i, out)
		r.deliver(out)
	}
	if r.last != nil {
		<-r.last
	}
	r.h.Write(trailer[:2])
	sum := r.h.Sum(nil)
	if subtle.ConstantTimeCompare(sum, trailer[2:]) != 1 || trailer[0] != 0xd3 || trailer[1] != sha1.Size {
		r.mdc = errMDC
	}
	r.err = io.EOF
}

// deliver makes out (less what is left of the prefix) the data to read.
func (r *mdcReader) deliver(out []byte) {
	k := min(r.skip, len(out))
	r.skip -= k
	r.cur = out[k:]
}

// hash hands data, in buffer i, to a goroutine that hashes it after
// everything handed before it. One goroutine per chunk, each ending with its
// chunk: nothing is left running if the reader is dropped half-way.
func (r *mdcReader) hash(i int, data []byte) {
	prev, done := r.last, make(chan struct{})
	h := r.h
	go func() {
		if prev != nil {
			<-prev
		}
		h.Write(data)
		close(done)
	}()
	r.busy[i], r.last = done, done
}

// decrypt CFB-decrypts p in place, p being whole blocks except at the end of
// the stream: each keystream block is the encryption of the ciphertext block
// before it.
func (r *mdcReader) decrypt(p []byte) {
	if len(p) == 0 {
		return
	}
	bs := len(r.iv)
	ks := r.ks[:len(p)+(bs-len(p)%bs)%bs]
	r.block.Encrypt(ks[:bs], r.iv)
	if r.multi != nil {
		r.multi.encrypt(ks[bs:], p[:len(ks)-bs])
	} else {
		for j := bs; j < len(p); j += bs {
			r.block.Encrypt(ks[j:j+bs], p[j-bs:j])
		}
	}
	if len(p)%bs == 0 {
		copy(r.iv, p[len(p)-bs:])
	}
	subtle.XORBytes(p, p, ks[:len(p)])
}

// readChunk reads until p is full (nil error) or the reader stops: io.EOF
// after the last byte, whatever came before it, or another error.
func readChunk(src io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := src.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
