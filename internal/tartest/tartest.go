// Package tartest holds what the archive packages' fuzz tests share
// (test-only).
package tartest

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// FixChecksums returns data with the checksum of every block that looks
// like a tar header recomputed, or nil if none changed: a fuzzer's change to
// a header's fields then reaches more than the tar reader's checksum test.
func FixChecksums(data []byte) []byte {
	var out []byte
	for off := 0; off+512 <= len(data); off += 512 {
		blk := data[off : off+512]
		if !bytes.Equal(blk[257:262], []byte("ustar")) {
			continue
		}
		sum := 0
		for i, c := range blk {
			if i >= 148 && i < 156 {
				c = ' '
			}
			sum += int(c)
		}
		want := fmt.Sprintf("%06o\x00 ", sum)
		if string(blk[148:156]) == want {
			continue
		}
		if out == nil {
			out = bytes.Clone(data)
		}
		copy(out[off+148:off+156], want)
	}
	return out
}

// Open writes data to the file p (one file serves every input: a fuzzing
// process runs one at a time) and opens it; it is closed when t ends.
func Open(t testing.TB, p string, data []byte) *os.File {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
