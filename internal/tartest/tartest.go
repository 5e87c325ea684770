// Package tartest holds what the archive packages' fuzz tests share
// (test-only).
package tartest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
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

// Normalize rewrites a tar archive entry by entry, with the values of the
// named JSON fields (such as "finished") replaced by "X" in the entries
// whose name ends in .jsonl or .json, and every header's times set to the epoch when
// zeroTimes: two archives of the same data written at other times then
// normalize to the same bytes, and anything else that differs still shows.
func Normalize(t testing.TB, data []byte, zeroTimes bool, fields ...string) []byte {
	t.Helper()
	var res []*regexp.Regexp
	for _, f := range fields {
		res = append(res, regexp.MustCompile(`"`+regexp.QuoteMeta(f)+`":"[^"]*"`))
	}
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(data))
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		if strings.HasSuffix(hdr.Name, ".jsonl") || strings.HasSuffix(hdr.Name, ".json") {
			for i, re := range res {
				body = re.ReplaceAll(body, []byte(`"`+fields[i]+`":"X"`))
			}
			hdr.Size = int64(len(body))
		}
		if zeroTimes {
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = time.Unix(0, 0), time.Time{}, time.Time{}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("rewriting %s: %v", hdr.Name, err)
		}
		tw.Write(body)
	}
	tw.Close()
	return out.Bytes()
}
