package imagearchive

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// largeVolume is sampleVolume with files around the sizes where a pass
// hands a file to the hashers, fills a chunk, and runs out of the pool's
// chunks; each file's bytes are its own, so that a change is found in
// one file only.
func largeVolume(t testing.TB) ([]byte, []volumeFile) {
	rng := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte { return randomBytes(rng, n) }
	var files []volumeFile
	for _, n := range []int{inlineHashMax, inlineHashMax + 1, streamBufferSize, streamBufferSize + 1, 3*streamBufferSize + 7, hashChunks*streamBufferSize + 5} {
		files = append(files, blob(string(random(n))))
	}
	// Not a blob: checked against the manifest only.
	files = append(files, volumeFile{name: "docker/registry/v2/repositories/team/app/_manifests/big", data: random(2*streamBufferSize + 9)})
	return sampleVolume(t, files...), files
}

// randomBytes are n bytes from rng, a file's content of its own.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Files over inlineHashMax are hashed beside the pass, from chunks of a
// stream or at their offsets in a file: the report is the one each file
// hashed in turn gives, a change in any of them is found in that file
// alone, and a cut in one is a damaged archive, not a hang.
func TestVerifyHashesLargeFilesAside(t *testing.T) {
	vol, files := largeVolume(t)
	f, m := write(t, vol)
	data := fileBytes(t, f)
	for _, from := range []struct {
		name   string
		source func([]byte) Source
	}{
		{"stream", func(b []byte) Source { return bytesSource(b) }},
		{"file", func(b []byte) Source { return FileSource(tempFile(t, b)) }},
	} {
		t.Run(from.name, func(t *testing.T) {
			rep, err := VerifyStream(from.source(data))
			assert.NilError(t, err)
			assert.Assert(t, rep.OK(), "%v", rep.Problems)
			assert.Equal(t, rep.Files, m.Files)

			for _, vf := range files {
				// A byte near the file's end, in its last chunk.
				at := bytes.Index(data, vf.data[len(vf.data)-64:])
				assert.Assert(t, at > 0, vf.name)
				changed := bytes.Clone(data)
				changed[at+10] ^= 0x20
				rep, err := VerifyStream(from.source(changed))
				assert.NilError(t, err)
				assert.Assert(t, !rep.OK(), "%s changed and verified", vf.name)
				for _, p := range rep.Problems {
					assert.Check(t, is.Contains(p.String(), vf.name))
				}
			}

			largest := files[len(files)-2]
			at := bytes.Index(data, largest.data[len(largest.data)/2:len(largest.data)/2+64])
			rep, err = VerifyStream(from.source(data[:at]))
			assert.NilError(t, err)
			assert.Assert(t, !rep.OK())
			assert.Check(t, is.Contains(rep.Problems[0].String(), largest.name+": the archive is damaged or truncated after this entry"), "%v", rep.Problems)
		})
	}

	// The source failing inside a large file is the error.
	tampered := errors.New("tampered")
	largest := files[len(files)-2].data
	at := bytes.Index(data, largest[len(largest)/2:len(largest)/2+64])
	_, err := VerifyStream(func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data[:at]), iotest.ErrReader(tampered))), nil
	})
	assert.Assert(t, errors.Is(err, tampered), "%v", err)

	// A file that cannot be read at its offset is a problem of the
	// archive, named by the entry.
	rep, err := VerifyStream(func() (io.ReadCloser, error) {
		return struct {
			io.ReadCloser
			io.ReaderAt
		}{io.NopCloser(bytes.NewReader(data)), failingAt{tampered}}, nil
	})
	assert.NilError(t, err)
	assert.Assert(t, !rep.OK())
	assert.Check(t, is.Contains(rep.Problems[0].String(), "/data: reading this entry: tampered"), "%v", rep.Problems)
}

type failingAt struct{ err error }

func (f failingAt) ReadAt([]byte, int64) (int, error) { return 0, f.err }

func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "images-*.tar")
	assert.NilError(t, err)
	t.Cleanup(func() { f.Close() })
	_, err = f.Write(data)
	assert.NilError(t, err)
	return f
}

// fill stops at the source's end or error, not at a short read.
func TestFill(t *testing.T) {
	c := make([]byte, 10)
	n, err := fill(iotest.OneByteReader(strings.NewReader("0123456789abc")), c)
	assert.Equal(t, n, 10)
	assert.NilError(t, err)
	n, err = fill(iotest.HalfReader(strings.NewReader("0123")), c)
	assert.Equal(t, n, 4)
	assert.Equal(t, err, io.EOF)
	n, err = fill(iotest.DataErrReader(strings.NewReader("01")), c)
	assert.Equal(t, n, 2)
	assert.Equal(t, err, io.EOF)
	n, err = fill(io.MultiReader(strings.NewReader("01"), iotest.ErrReader(io.ErrUnexpectedEOF)), c)
	assert.Equal(t, n, 2)
	assert.Equal(t, err, io.ErrUnexpectedEOF)
}
