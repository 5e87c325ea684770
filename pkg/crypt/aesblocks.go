package crypt

import "encoding/binary"

// aesBlocks encrypts many independent AES blocks in one call. The standard
// library's cipher.Block encrypts one block per call, so the AES-NI rounds
// of a block wait for those before them; CFB decryption can encrypt a whole
// chunk's blocks at once, eight at a time interleaved (aesblocks_amd64.s).
type aesBlocks struct {
	xk []byte // the round keys, 16 bytes each, in the order AESENC reads them
	nr int    // rounds: 10, 12 or 14
}

// newAESBlocks returns nil where there is no assembly for it: the caller
// then uses the cipher.Block.
func newAESBlocks(key []byte) *aesBlocks {
	if !haveAESBlocks || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
		return nil
	}
	xk, nr := expandKey(key)
	return &aesBlocks{xk: xk, nr: nr}
}

// encrypt sets dst[i] = E(src[i]) for each 16-byte block; len(src) is a
// multiple of 16 and dst is at least as long.
func (a *aesBlocks) encrypt(dst, src []byte) {
	n := len(src) / 16
	if n == 0 {
		return
	}
	_ = dst[16*n-1]
	encryptBlocksAsm(&a.xk[0], a.nr, &dst[0], &src[0], n)
}

// expandKey is the AES key expansion (FIPS-197 section 5.2), the round keys
// as bytes.
func expandKey(key []byte) ([]byte, int) {
	nk := len(key) / 4
	nr := nk + 6
	w := make([]uint32, 4*(nr+1))
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < len(w); i++ {
		t := w[i-1]
		switch {
		case i%nk == 0:
			t = subWord(t<<8|t>>24) ^ rcon<<24
			rcon <<= 1
			if rcon&0x100 != 0 {
				rcon ^= 0x11b
			}
		case nk > 6 && i%nk == 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	xk := make([]byte, 4*len(w))
	for i, v := range w {
		binary.BigEndian.PutUint32(xk[4*i:], v)
	}
	return xk, nr
}

func subWord(w uint32) uint32 {
	return uint32(sbox[w>>24])<<24 | uint32(sbox[w>>16&0xff])<<16 | uint32(sbox[w>>8&0xff])<<8 | uint32(sbox[w&0xff])
}

// sbox is the AES S-box, computed: the inverse in GF(2^8), then the affine
// map (the tests check the cipher against crypto/aes).
var sbox = func() (s [256]byte) {
	rotl := func(x byte, n uint) byte { return x<<n | x>>(8-n) }
	p, q := byte(1), byte(1)
	for {
		// p times 3, q divided by 3: q stays p's inverse.
		if p&0x80 != 0 {
			p = p ^ p<<1 ^ 0x1b
		} else {
			p ^= p << 1
		}
		q ^= q << 1
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		s[p] = q ^ rotl(q, 1) ^ rotl(q, 2) ^ rotl(q, 3) ^ rotl(q, 4) ^ 0x63
		if p == 1 {
			break
		}
	}
	s[0] = 0x63
	return s
}()
