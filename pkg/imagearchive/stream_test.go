package imagearchive

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp/cmpopts"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// bytesSource reads data on each pass, in uneven pieces, as a decryption
// gives it; next, when set, is what the passes after the first read.
func bytesSource(data []byte, next ...[]byte) Source {
	pass := 0
	return func() (io.ReadCloser, error) {
		d := data
		if pass > 0 && pass-1 < len(next) {
			d = next[pass-1]
		}
		pass++
		return io.NopCloser(iotest.HalfReader(bytes.NewReader(d))), nil
	}
}

func fileBytes(t *testing.T, f *os.File) []byte {
	t.Helper()
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	assert.NilError(t, err)
	return data
}

// The content pass writes what Content writes, and counts every file it
// checked against the verified manifest on the way.
func TestContentStreamIsContent(t *testing.T) {
	f, m := write(t, sampleVolume(t))
	data := fileBytes(t, f)
	rep, err := VerifyStream(bytesSource(data))
	assert.NilError(t, err)
	assert.Assert(t, rep.OK(), "%v", rep.Problems)
	plain, err := Verify(f)
	assert.NilError(t, err)
	assert.DeepEqual(t, rep.Problems, plain.Problems)
	assert.Equal(t, rep.ManifestSHA256, plain.ManifestSHA256)
	assert.Equal(t, rep.Size, int64(len(data)))

	var want, got bytes.Buffer
	assert.NilError(t, Content(f, rep.ContentDir, &want))
	c, err := ContentStream(bytesSource(data), rep, nil, &got)
	assert.NilError(t, err)
	assert.Assert(t, bytes.Equal(got.Bytes(), want.Bytes()))
	assert.Equal(t, c.Checked, m.Files)
	assert.Assert(t, c.OK())

	vc, err := CheckVolumeOf(rep, bytes.NewReader(rewrap(t, got.Bytes())))
	assert.NilError(t, err)
	assert.Assert(t, vc.OK())
	assert.Equal(t, vc.Checked, m.Files)
}

// A blob that changed between the verify and the content pass (the file
// replaced, or another decryption of it) is refused at the end of its
// bytes, whatever the tar says: same size, same names.
func TestContentStreamRefusesAChangedArchive(t *testing.T) {
	f, _ := write(t, sampleVolume(t))
	data := fileBytes(t, f)
	rep, err := VerifyStream(bytesSource(data))
	assert.NilError(t, err)
	assert.Assert(t, rep.OK())

	for name, change := range map[string]func([]byte) []byte{
		"a blob's byte": func(d []byte) []byte { return bytes.Replace(d, []byte("layer one"), []byte("layer ONE"), 1) },
		"the manifest":  func(d []byte) []byte { return bytes.Replace(d, []byte(`"0123456789ab"`), []byte(`"0123456789ac"`), 1) },
		"cut short":     func(d []byte) []byte { return d[:len(d)/2] },
	} {
		changed := change(bytes.Clone(data))
		assert.Assert(t, !bytes.Equal(changed, data), name)
		_, err := ContentStream(bytesSource(changed), rep, nil, io.Discard)
		assert.Assert(t, err != nil, name)
		if name != "cut short" {
			assert.Assert(t, errors.Is(err, ErrChanged), "%s: %v", name, err)
		}
	}
}

// The source's own error (an encrypted file's integrity check, at its
// end) is the error of either pass, after every byte passed the tar.
func TestStreamSourceErrorIsTheError(t *testing.T) {
	f, _ := write(t, sampleVolume(t))
	data := fileBytes(t, f)
	tampered := errors.New("tampered")
	failing := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(tampered))), nil
	}
	_, err := VerifyStream(failing)
	assert.Assert(t, errors.Is(err, tampered), "%v", err)
	_, err = InspectStream(failing)
	assert.Assert(t, errors.Is(err, tampered), "%v", err)

	rep, err := VerifyStream(bytesSource(data))
	assert.NilError(t, err)
	_, err = ContentStream(failing, rep, nil, io.Discard)
	assert.Assert(t, errors.Is(err, tampered), "%v", err)
}

// InspectStream reports the header as Inspect does the file.
func TestInspectStream(t *testing.T) {
	f, _ := write(t, sampleVolume(t))
	want, err := Inspect(f)
	assert.NilError(t, err)
	got, err := InspectStream(bytesSource(fileBytes(t, f)))
	assert.NilError(t, err)
	assert.DeepEqual(t, got, want, cmpopts.IgnoreUnexported(Report{}))
	assert.Check(t, is.Len(got.Problems, 0))
}
