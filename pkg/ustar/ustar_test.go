package ustar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// corpus is headers of every shape the fast path takes or leaves:
// names around USTAR's limits, types, owners, numbers at their fields'
// bounds, times, formats and records.
func corpus(r *rand.Rand, n int) []tar.Header {
	blob := "storage/docker/registry/v2/blobs/sha256/ab/" + strings.Repeat("a", 64)
	names := []string{
		"storage/", "storage/docker/", blob + "/", blob + "/data",
		"storage/docker/registry/v2/repositories/library/ubuntu/_layers/sha256/" + strings.Repeat("b", 64) + "/link",
		strings.Repeat("n", 99), strings.Repeat("n", 100), strings.Repeat("n", 101),
		strings.Repeat("p", 155) + "/" + strings.Repeat("n", 100),
		strings.Repeat("p", 156) + "/" + strings.Repeat("n", 10),
		strings.Repeat("p", 150) + "/" + strings.Repeat("n", 101),
		"/" + strings.Repeat("n", 120), strings.Repeat("p", 120) + "/",
		strings.Repeat("d/", 60), "naïve/" + strings.Repeat("n", 110), "nul\x00name", "",
	}
	flags := []byte{tar.TypeReg, tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeRegA, tar.TypeLink,
		tar.TypeFifo, tar.TypeChar, tar.TypeCont, 'O', 'A', 'K', 'L', 'S', 'V', tar.TypeXHeader}
	owners := []string{"", "root", "registry", strings.Repeat("u", 32), strings.Repeat("u", 33), "ü"}
	links := []string{"", "../x", strings.Repeat("l", 100), strings.Repeat("l", 101), "lé"}
	nums := []int64{0, 1, 0o644, 0o100644, 0o40755, 1000, 1<<21 - 1, 1 << 21, -1}
	sizes := []int64{0, 1, 511, 512, 513, 4096, 1<<33 - 1, 1 << 33, -1}
	times := []time.Time{{}, time.Unix(1700000000, 0), time.Unix(1700000000, 400_000_000),
		time.Unix(1700000000, 600_000_000), time.Unix(0, 0), time.Unix(-5, 0), time.Unix(1<<33, 0), time.Unix(1<<33-1, 0)}
	formats := []tar.Format{tar.FormatUnknown, tar.FormatUnknown, tar.FormatPAX, tar.FormatPAX, tar.FormatUSTAR, tar.FormatGNU}
	pick := func(k int) int { return r.IntN(k) }
	out := make([]tar.Header, 0, n)
	for i := range n {
		if i%2 == 0 {
			// Plain: what the fast path is for, at its bounds.
			out = append(out, tar.Header{
				Name: names[pick(9)], Typeflag: []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, 'O', 'A'}[pick(5)],
				Linkname: links[pick(3)], Mode: nums[pick(7)], Uid: int(nums[pick(7)]), Gid: int(nums[pick(7)]),
				Uname: owners[pick(4)], Gname: owners[pick(4)], Size: sizes[pick(7)],
				ModTime: []time.Time{{}, times[1], times[2], times[4], times[7]}[pick(5)], Format: formats[pick(5)],
			})
			continue
		}
		h := tar.Header{
			Name: names[pick(len(names))], Typeflag: flags[pick(len(flags))],
			Linkname: links[pick(len(links))], Mode: nums[pick(len(nums))],
			Uid: int(nums[pick(len(nums))]), Gid: int(nums[pick(len(nums))]),
			Uname: owners[pick(len(owners))], Gname: owners[pick(len(owners))],
			Size: sizes[pick(len(sizes))], ModTime: times[pick(len(times))],
			Format: formats[pick(len(formats))],
		}
		switch pick(8) {
		case 0:
			h.PAXRecords = map[string]string{"DOCKERDTR.omittedsize": "12"}
		case 1:
			h.AccessTime = time.Unix(1700000001, 0)
		case 2:
			h.Devmajor = 1
		}
		out = append(out, h)
	}
	return out
}

// write writes hs, each with its content where it is small, through
// archive/tar or this package, and says what each call returned.
func write(hs []tar.Header, ours bool) ([]byte, []string) {
	var buf bytes.Buffer
	type tarWriter interface {
		WriteHeader(*tar.Header) error
		io.Writer
		Flush() error
		Close() error
	}
	var tw tarWriter = tar.NewWriter(&buf)
	if ours {
		tw = NewWriter(&buf)
	}
	var calls []string
	for i := range hs {
		h := hs[i]
		err := tw.WriteHeader(&h)
		calls = append(calls, fmt.Sprint("header ", i, err != nil))
		if err != nil || h.Size > 1<<20 || h.Size < 0 {
			continue
		}
		content := bytes.Repeat([]byte{byte(i)}, int(h.Size))
		n, err := tw.Write(content)
		calls = append(calls, fmt.Sprint("write ", i, n, err))
		if err != nil {
			continue
		}
		calls = append(calls, fmt.Sprint("flush ", i, tw.Flush() != nil))
	}
	calls = append(calls, fmt.Sprint("close ", tw.Close()), fmt.Sprint("close again ", tw.Close()))
	return buf.Bytes(), calls
}

// The same headers and content give the same bytes and the same
// outcomes as archive/tar, and the fast path takes most plain ones.
func TestSameAsArchiveTar(t *testing.T) {
	r := rand.New(rand.NewPCG(20261207, 1))
	for round := range 200 {
		hs := corpus(r, 40)
		want, wantCalls := write(hs, false)
		got, gotCalls := write(hs, true)
		assert.DeepEqual(t, gotCalls, wantCalls)
		if !bytes.Equal(got, want) {
			for i := 0; i < min(len(got), len(want)); i++ {
				if got[i] != want[i] {
					t.Fatalf("round %d: byte %d (block %d, offset %d) is %q, archive/tar wrote %q", round, i, i/512, i%512, got[i], want[i])
				}
			}
			t.Fatalf("round %d: %d bytes, archive/tar wrote %d", round, len(got), len(want))
		}
	}
	var blk [blockSize]byte
	fastOnes := 0
	for _, h := range corpus(r, 2000) {
		if encode(&blk, &h) {
			fastOnes++
		}
	}
	assert.Assert(t, fastOnes > 500, "the fast path took %d of 2000", fastOnes)
}

// What a registry volume's stream holds goes through the fast path.
func TestVolumeEntriesAreFast(t *testing.T) {
	blob := "storage/docker/registry/v2/blobs/sha256/ab/" + strings.Repeat("a", 64)
	mtime := time.Unix(1700000000, 0)
	var blk [blockSize]byte
	for _, h := range []tar.Header{
		{Name: blob + "/", Typeflag: tar.TypeDir, Mode: 0o40755, ModTime: mtime, Format: tar.FormatPAX},
		{Name: blob + "/data", Typeflag: tar.TypeReg, Mode: 0o100644, Size: 1 << 30, ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX},
		{Name: blob + "/data", Typeflag: 'O', Linkname: "1073741824", Mode: 0o100644, Format: tar.FormatPAX},
		{Name: "docker/registry/v2/" + blob + "/data", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1700000000, 7)},
	} {
		assert.Assert(t, encode(&blk, &h), "%+v", h)
	}
}

func TestEntrySizeErrors(t *testing.T) {
	tw := NewWriter(io.Discard)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: 3}))
	n, err := tw.Write([]byte("abcd"))
	assert.Equal(t, n, 3)
	assert.Assert(t, errors.Is(err, tar.ErrWriteTooLong))
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "g", Typeflag: tar.TypeReg, Size: 3}))
	_, err = tw.Write([]byte("a"))
	assert.NilError(t, err)
	assert.ErrorContains(t, tw.WriteHeader(&tar.Header{Name: "h", Typeflag: tar.TypeDir}), "missed writing 2 bytes")
	assert.ErrorContains(t, tw.Close(), "missed writing 2 bytes")
}

func BenchmarkWriteHeader(b *testing.B) {
	h := &tar.Header{Name: "storage/docker/registry/v2/blobs/sha256/ab/" + strings.Repeat("a", 64) + "/data",
		Typeflag: tar.TypeReg, Mode: 0o100644, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
	for _, w := range []struct {
		name string
		tw   interface{ WriteHeader(*tar.Header) error }
	}{{"archive-tar", tar.NewWriter(io.Discard)}, {"ustar", NewWriter(io.Discard)}} {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := w.tw.WriteHeader(h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
