package ustar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// stream is a tar stream as archive/tar writes it, of plain entries and
// others: PAX records, names USTAR cannot hold, GNU headers, hard links.
func stream(r *rand.Rand, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	blob := "storage/docker/registry/v2/blobs/sha256/ab/" + strings.Repeat("c", 64)
	for i := range n {
		h := tar.Header{Name: fmt.Sprintf("%s/%d/data", blob, i), Typeflag: tar.TypeReg, Mode: 0o100644,
			Size: int64(r.IntN(1500)), ModTime: time.Unix(1700000000+int64(i), 0), Uname: "root", Format: tar.FormatPAX}
		switch r.IntN(12) {
		case 0:
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, fmt.Sprintf("%s/%d/", blob, i)
		case 1:
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, "../x"
		case 2:
			h.Typeflag, h.Linkname, h.Size = 'O', "123", 0
		case 3:
			h.PAXRecords = map[string]string{"DOCKERDTR.omittedsize": "77"}
		case 4:
			h.Name = strings.Repeat("é", 80) + fmt.Sprint(i)
		case 5:
			h.Name = strings.Repeat("n", 300) + fmt.Sprint(i)
		case 6:
			h.Format = tar.FormatGNU
			h.Name = strings.Repeat("g", 120) + fmt.Sprint(i)
		case 7:
			h.Typeflag, h.Size, h.Linkname = tar.TypeLink, 0, "target"
		case 8:
			h.ModTime = time.Unix(1700000000, 5)
		}
		if err := tw.WriteHeader(&h); err != nil {
			panic(err)
		}
		tw.Write(bytes.Repeat([]byte{byte(i)}, int(h.Size)))
	}
	tw.Close()
	return buf.Bytes()
}

type tarReader interface {
	Next() (*tar.Header, error)
	io.Reader
}

// readAll reads every entry, its content in chunks of random sizes or
// not at all, and says what each call gave; with full, each chunk is
// filled (io.ReadFull), so that how the source splits its reads shows
// only in the errors.
func readAll(tr tarReader, seed uint64, full ...bool) []string {
	r := rand.New(rand.NewPCG(seed, 2))
	var out []string
	for range 1000 {
		hdr, err := tr.Next()
		out = append(out, fmt.Sprintf("next %+v %v", hdr, err))
		if err != nil {
			return out
		}
		if r.IntN(4) == 0 {
			continue // left for Next to skip
		}
		buf := make([]byte, 1+r.IntN(700))
		// A sparse file's holes read as zeros up to its size: the rest
		// past 64 KiB is left for Next to skip.
		for read := 0; read < 64<<10; {
			var n int
			var err error
			if len(full) > 0 {
				n, err = io.ReadFull(tr, buf)
			} else {
				n, err = tr.Read(buf)
			}
			read += n
			out = append(out, fmt.Sprintf("read %q %v", buf[:n], err))
			if err != nil {
				break
			}
		}
	}
	return out
}

// Read back, good or damaged, a stream gives what archive/tar gives.
func TestReaderSameAsArchiveTar(t *testing.T) {
	r := rand.New(rand.NewPCG(20261207, 3))
	for round := range 3000 {
		data := stream(r, 1+r.IntN(30))
		switch round % 3 {
		case 1: // cut short
			data = data[:r.IntN(len(data))]
		case 2: // bytes changed
			data = bytes.Clone(data)
			for range 1 + r.IntN(4) {
				data[r.IntN(len(data))] = byte(r.IntN(256))
			}
		}
		seed := r.Uint64()
		want := readAll(tar.NewReader(bytes.NewReader(data)), seed)
		got := readAll(NewReader(bytes.NewReader(data)), seed)
		assert.DeepEqual(t, got, want)
		// Through a bufio.Reader, whose Discard skips content.
		size := 16 + r.IntN(1024)
		want = readAll(tar.NewReader(bytes.NewReader(data)), seed, true)
		got = readAll(NewReader(bufio.NewReaderSize(bytes.NewReader(data), size)), seed, true)
		assert.DeepEqual(t, got, want)
	}
}

// A plain header is read without archive/tar.
func TestReaderPlainIsFast(t *testing.T) {
	data := stream(rand.New(rand.NewPCG(1, 1)), 200)
	tr := NewReader(bytes.NewReader(data))
	fast := 0
	for {
		_, err := tr.Next()
		if err != nil {
			break
		}
		if !tr.slowNow && !tr.slowAll {
			fast++
		}
	}
	assert.Assert(t, fast > 50, "%d of 200 read without archive/tar", fast)
}

func BenchmarkNext(b *testing.B) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 1000 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("storage/docker/registry/v2/blobs/sha256/ab/%064d/data", i),
			Typeflag: tar.TypeReg, Mode: 0o100644, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX})
	}
	tw.Close()
	data := buf.Bytes()
	for _, r := range []struct {
		name string
		open func(io.Reader) tarReader
	}{{"archive-tar", func(r io.Reader) tarReader { return tar.NewReader(r) }}, {"ustar", func(r io.Reader) tarReader { return NewReader(r) }}} {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr := r.open(bytes.NewReader(data))
				for {
					if _, err := tr.Next(); err != nil {
						break
					}
				}
			}
		})
	}
}
