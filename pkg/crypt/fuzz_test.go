package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fuzzLimit bounds the plaintext read from one input: go-crypto decompresses
// as a stream, so a compression bomb costs time, not memory, and this keeps
// the time bounded too.
const fuzzLimit = 64 << 20

// hangAfter is far above the slowest legitimate input: 64 passphrase packets
// each at the highest S2K count take some seconds.
const hangAfter = 2 * time.Minute

// FuzzDecrypt feeds arbitrary bytes to Decrypt with a fixed passphrase and
// identities: it must not panic or hang, must ask for the passphrase at most
// once, and must end in one of the package's errors or a complete plaintext.
// Seeds: the messages in testdata (gpg's and ours) and fresh ones of ours.
//
//	go test -run=^$ -fuzz=FuzzDecrypt -fuzzminimizetime=5s ./pkg/crypt
//
// (Go minimizes each new input with thousands of runs, by default for up to
// a minute each: a short -fuzzminimizetime leaves more time for fuzzing.)
func FuzzDecrypt(f *testing.F) {
	pass := fixturePass(f)
	// No RSA identity: an RSA-3072 decryption costs 100 times the rest
	// of an input, and Go minimizes each new input with thousands of runs.
	// RSA session-key packets are still parsed (to-rsa.gpg).
	ids := append(identity(f, "ecc-sec.asc"), identity(f, "protected-sec.asc")...)

	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		if strings.HasSuffix(p, ".gpg") || (strings.HasSuffix(p, ".asc") && strings.Contains(filepath.Base(p), "to-")) {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(encrypt(f, []byte("fuzz seed"), Recipients{Passphrase: pass}))
	f.Add(encrypt(f, bytes.Repeat([]byte("x"), 600), Recipients{Keys: recipients(f, "ecc-pub.asc", "rsa-pub.asc", "protected-pub.asc")}))
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN PGP MESSAGE-----\n\nwcBMA2x\n-----END PGP MESSAGE-----\n"))

	known := []error{ErrNotEncrypted, ErrUnsupported, ErrWrongPassphrase, ErrNoKey, ErrTampered, ErrTruncated}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang becomes a crash, with the stacks to show where.
		watchdog := time.AfterFunc(hangAfter, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("Decrypt hung for %v on %d bytes:\n%s", hangAfter, len(data), buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		calls := 0
		s := Secrets{
			Passphrase: func() ([]byte, error) {
				calls++
				return pass, nil
			},
			Identities: ids,
		}
		pt, err := Decrypt(bytes.NewReader(data), s)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, io.LimitReader(pt, fuzzLimit+1))
			if n > fuzzLimit {
				t.Fatalf("more than %d bytes of plaintext", fuzzLimit)
			}
		}
		if calls > 1 {
			t.Fatalf("passphrase asked %d times", calls)
		}
		if err == nil {
			return
		}
		for _, k := range known {
			if errors.Is(err, k) {
				return
			}
		}
		t.Fatalf("error of no known kind: %v", err)
	})
}
