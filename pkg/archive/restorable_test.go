package archive_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/archive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func verifyData(t *testing.T, data []byte) *archive.Report {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.tar")
	assert.NilError(t, os.WriteFile(p, data, 0o600))
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	rep, err := archive.Verify(f)
	assert.NilError(t, err)
	return rep
}

// Every backup of the corpus passes its checksums but cannot be restored
// as it is: verify says why, in one problem.
func TestVerifyRefusesUnrestorableBackups(t *testing.T) {
	rep := verifyData(t, backuptest.Restorable(t))
	assert.Assert(t, rep.OK() && rep.Verified, "%v", rep.Problems)
	for _, c := range backuptest.UnrestorableBackups(t) {
		t.Run(c.Name, func(t *testing.T) {
			rep := verifyData(t, c.Data)
			var lines []string
			for _, p := range rep.Problems {
				lines = append(lines, p.String())
			}
			assert.Equal(t, len(rep.Problems), 1, "one problem: %s", strings.Join(lines, "\n"))
			assert.Assert(t, is.Contains(rep.Problems[0].String(), c.Want))
			assert.Assert(t, !rep.Verified)
			t.Log(lines[0])
		})
	}
}

// A backup read as a stream (VerifyStream, InspectStream: an encrypted
// backup, decrypted as it is read) gets the report its file gets, good or
// not restorable.
func TestStreamReportsAsTheFile(t *testing.T) {
	cases := []backuptest.Unrestorable{{Name: "restorable", Data: backuptest.Restorable(t)}}
	cases = append(cases, backuptest.UnrestorableBackups(t)...)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "backup.tar")
			assert.NilError(t, os.WriteFile(p, c.Data, 0o600))
			f, err := os.Open(p)
			assert.NilError(t, err)
			defer f.Close()
			open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(c.Data)), nil }
			file, err := archive.Verify(f)
			assert.NilError(t, err)
			stream, err := archive.VerifyStream(open)
			assert.NilError(t, err)
			assert.DeepEqual(t, file, stream)
			assert.Equal(t, file.OK(), c.Want == "")
			file, err = archive.Inspect(f)
			assert.NilError(t, err)
			stream, err = archive.InspectStream(open)
			assert.NilError(t, err)
			assert.DeepEqual(t, file, stream)
		})
	}
}

// A stream that fails (an encrypted backup changed or cut, found by its
// integrity check at the end) is an error, with no report, whichever pass
// finds it.
func TestStreamErrorIsTheError(t *testing.T) {
	data := backuptest.Restorable(t)
	bad := errors.New("cannot decrypt backup.tar.gpg: the message was modified")
	for _, at := range []int{0, 700, len(data) / 2, len(data)} {
		open := func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(data[:at]), iotest.ErrReader(bad))), nil
		}
		rep, err := archive.VerifyStream(open)
		assert.Assert(t, rep == nil)
		assert.Equal(t, err, bad)
		rep, err = archive.InspectStream(open)
		assert.Assert(t, rep == nil)
		assert.Equal(t, err, bad)
	}
}
