package crypt

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// mdcCase is a message and the secrets that open it.
type mdcCase struct {
	name string
	msg  []byte
	s    Secrets
}

// decryptChunk reads a whole message as decrypt does, with mdcReader
// decrypting chunk bytes at a time (0: go-crypto's reader); slowIn and
// slowOut feed the message and read the plaintext a byte at a time.
func decryptChunk(msg []byte, s Secrets, chunk int, slowIn, slowOut bool) ([]byte, error) {
	var in io.Reader = bytes.NewReader(msg)
	if slowIn {
		in = iotest.OneByteReader(in)
	}
	r, _, err := decryptOpened(in, s, chunk)
	if err != nil {
		return nil, err
	}
	if slowOut {
		r = iotest.OneByteReader(r)
	}
	return io.ReadAll(r)
}

// sameResult fails unless our reader gave what go-crypto's gave: the same
// plaintext, or the same error (what was read before an error may differ:
// both say to discard it).
func sameResult(t *testing.T, what string, got []byte, gotErr error, want []byte, wantErr error) {
	t.Helper()
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%s: error %v, go-crypto's %v", what, gotErr, wantErr)
	}
	if gotErr == nil && !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from go-crypto's %d", what, len(got), len(want))
	}
}

// mdcChunks are the chunk sizes tried: one and a few blocks (the MDC packet
// then spans chunks), odd sizes (cut down to whole blocks) and the real one.
var mdcChunks = []int{8, 16, 24, 32, 48, 1000, 4096, mdcChunk}

// gpgMessages encrypts plaintexts of several sizes with the real gpg -c:
// compressed and not, armored, AES-128/192/256 and 3DES (8-byte blocks).
func gpgMessages(t *testing.T, pass []byte) []mdcCase {
	g := newGPG(t, true)
	pf := g.file("pass", pass)
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	var out []mdcCase
	for _, size := range []int{0, 1, 100, 8191, 8192, 8193, 70000, 300000} {
		in := g.file(fmt.Sprintf("plain-%d", size), payload(size, int64(size)))
		for _, args := range [][]string{
			{"--compress-algo", "none"},
			{"--compress-algo", "zlib"},
			{"--compress-algo", "none", "-a"},
			{"--compress-algo", "none", "--cipher-algo", "AES128"},
			{"--compress-algo", "none", "--cipher-algo", "AES192"},
			{"--compress-algo", "none", "--cipher-algo", "3DES"},
		} {
			name := fmt.Sprintf("gpg-%d%s", size, strings.Join(args, ""))
			o := filepath.Join(g.dir, "msg")
			g.run(append(append([]string{"--passphrase-file", pf, "--s2k-count", "65536", "-o", o}, args...), "-c", in)...)
			msg, err := os.ReadFile(o)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, mdcCase{name, msg, ps})
		}
	}
	return out
}

// ourMessages are Encrypt's, with sizes around its 64 KiB writes and the
// reader's chunks.
func ourMessages(t *testing.T, pass []byte) []mdcCase {
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	ks := Secrets{Identities: identity(t, "ecc-sec.asc")}
	var out []mdcCase
	for _, size := range []int{0, 1, 15, 16, 17, 22, 40, 100, 4096, chunkSize - 1, chunkSize, chunkSize + 1, mdcChunk - 40, mdcChunk - 18, mdcChunk, 2*mdcChunk + 13} {
		out = append(out, mdcCase{fmt.Sprintf("ours-%d", size), encrypt(t, payload(size, int64(size)), Recipients{Passphrase: pass}), ps})
	}
	out = append(out, mdcCase{"ours-key", encrypt(t, payload(5000, 1), Recipients{Keys: recipients(t, "ecc-pub.asc")}), ks})
	return out
}

// fixtureMessages are testdata's messages by gpg (signed, to keys, ...).
func fixtureMessages(t *testing.T, pass []byte) []mdcCase {
	s := Secrets{
		Passphrase: func() ([]byte, error) { return pass, nil },
		Identities: append(append(identity(t, "ecc-sec.asc"), identity(t, "rsa-sec.asc")...), identity(t, "protected-sec.asc")...),
	}
	var out []mdcCase
	for _, f := range []string{"sym-aes256.gpg", "sym-aes128.gpg", "sym-uncompressed.gpg", "sym-armored.asc", "to-ecc.gpg", "to-protected.asc", "signed-to-ecc.gpg", "to-hidden.gpg", "ours-sym.gpg", "ours-to-ecc-rsa.gpg"} {
		out = append(out, mdcCase{f, fixture(t, f), s})
	}
	return out
}

// Our SEIPD reader decrypts what gpg and Encrypt write exactly as go-crypto's
// does, whatever the chunk size and however the input arrives and the
// output is read.
func TestMDCReaderMatchesGoCrypto(t *testing.T) {
	pass := fixturePass(t)
	cases := append(append(ourMessages(t, pass), fixtureMessages(t, pass)...), gpgMessages(t, pass)...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := decryptChunk(tc.msg, tc.s, 0, false, false)
			if wantErr != nil {
				t.Fatalf("go-crypto: %v", wantErr)
			}
			for _, chunk := range mdcChunks {
				got, err := decryptChunk(tc.msg, tc.s, chunk, false, false)
				sameResult(t, fmt.Sprintf("chunk %d", chunk), got, err, want, wantErr)
				if len(tc.msg) < 20000 || chunk == mdcChunk {
					got, err = decryptChunk(tc.msg, tc.s, chunk, true, true)
					sameResult(t, fmt.Sprintf("chunk %d, a byte at a time", chunk), got, err, want, wantErr)
				}
			}
		})
	}
}

// Changed and cut messages fail as with go-crypto's reader: every byte of
// small messages changed, every length cut, at chunk sizes that put the
// change before, in and after the MDC packet's chunk.
func TestMDCReaderDamageMatchesGoCrypto(t *testing.T) {
	pass := fixturePass(t)
	ps := Secrets{Passphrase: func() ([]byte, error) { return pass, nil }}
	g := newGPG(t, true)
	pf := g.file("pass", pass)
	in := g.file("plain", payload(700, 7))
	o := filepath.Join(g.dir, "msg")
	g.run("--passphrase-file", pf, "--s2k-count", "65536", "--compress-algo", "none", "-o", o, "-c", in)
	gpgMsg, err := os.ReadFile(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []mdcCase{
		{"ours", encrypt(t, payload(300, 9), Recipients{Passphrase: pass}), ps},
		{"gpg", gpgMsg, ps},
		{"signed-to-ecc.gpg", fixture(t, "signed-to-ecc.gpg"), Secrets{Identities: identity(t, "ecc-sec.asc")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, msg []byte, lengthByte bool) {
				want, wantErr := decryptChunk(msg, tc.s, 0, false, false)
				for _, chunk := range []int{16, 48, mdcChunk} {
					got, err := decryptChunk(msg, tc.s, chunk, false, false)
					if lengthByte && wantErr == nil && err == ErrTruncated {
						// The last length made longer than the data: go-crypto
						// takes the end, met by a short read of its packet
						// reader, for the packet's end; the data is intact
						// (the MDC matches) but the file is cut. Ours says so.
						continue
					}
					sameResult(t, fmt.Sprintf("%s, chunk %d", what, chunk), got, err, want, wantErr)
				}
			}
			for at := dataOffset(t, tc.msg); at < len(tc.msg); at++ {
				for _, flip := range []byte{0x01, 0x80} {
					bad := bytes.Clone(tc.msg)
					bad[at] ^= flip
					check(fmt.Sprintf("byte %d ^ %#x", at, flip), bad, isLengthByte(tc.msg, at))
				}
			}
			for n := 1; n < len(tc.msg); n++ {
				check(fmt.Sprintf("cut at %d", n), tc.msg[:n], false)
			}
			// And a change in a big message, in its last chunk and far
			// from it, reads as tampered.
			big := encrypt(t, payload(3*mdcChunk+100, 4), Recipients{Passphrase: pass})
			for _, at := range []int{1000, len(big) / 2, len(big) - 30, len(big) - 1} {
				bad := bytes.Clone(big)
				bad[at] ^= 0x04
				if _, err := decryptChunk(bad, ps, mdcChunk, false, false); err != ErrTampered {
					t.Errorf("big, byte %d changed: %v", at, err)
				}
			}
		})
	}
}

// A reader dropped half-way leaves no goroutine behind.
func TestMDCReaderDroppedHalfWay(t *testing.T) {
	pass := fixturePass(t)
	msg := encrypt(t, payload(8*mdcChunk, 5), Recipients{Passphrase: pass})
	before := runtime.NumGoroutine()
	for range 10 {
		r, err := Decrypt(bytes.NewReader(msg), Secrets{Passphrase: func() ([]byte, error) { return pass, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, r, 3*mdcChunk); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines before, %d after", before, n)
	}
}
