package crypt

import (
	"bytes"
	"crypto/aes"
	"math/rand"
	"testing"
)

// The many-block AES agrees with crypto/aes for every key size and any
// number of blocks (the eight-way loop and the one-block tail), in place too.
func TestAESBlocksMatchesStdlib(t *testing.T) {
	if !haveAESBlocks {
		t.Skip("no AES assembly on this machine")
	}
	rnd := rand.New(rand.NewSource(1))
	for _, ks := range []int{16, 24, 32} {
		for trial := range 20 {
			key := make([]byte, ks)
			rnd.Read(key)
			std, err := aes.NewCipher(key)
			if err != nil {
				t.Fatal(err)
			}
			a := newAESBlocks(key)
			for _, n := range []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 33, trial * 5} {
				src := make([]byte, 16*n)
				rnd.Read(src)
				want := make([]byte, len(src))
				for i := 0; i < len(src); i += 16 {
					std.Encrypt(want[i:i+16], src[i:i+16])
				}
				got := make([]byte, len(src)+16)
				a.encrypt(got, src)
				if !bytes.Equal(got[:len(src)], want) || !bytes.Equal(got[len(src):], make([]byte, 16)) {
					t.Fatalf("key %d bytes, %d blocks: differs from crypto/aes", ks, n)
				}
				a.encrypt(src, src)
				if !bytes.Equal(src, want) {
					t.Fatalf("key %d bytes, %d blocks, in place: differs from crypto/aes", ks, n)
				}
			}
		}
	}
}

// FIPS-197 appendix C.3: the AES-256 example vector.
func TestAESBlocksFIPS197(t *testing.T) {
	if !haveAESBlocks {
		t.Skip("no AES assembly on this machine")
	}
	key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}
	in := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	want := []byte{0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49, 0x60, 0x89}
	got := make([]byte, 16)
	newAESBlocks(key).encrypt(got, in)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}
