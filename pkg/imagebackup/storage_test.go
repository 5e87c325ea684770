package imagebackup

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A backup that would restore no image is refused; one that holds blobs
// goes on, saying what the settings said, or why they are not known.
func TestJudgeStorage(t *testing.T) {
	fs := dtrstorage.Backend{Driver: "filesystem", RootDirectory: "/storage", Setting: "registry.json"}
	azure := dtrstorage.Backend{Driver: "azure", Container: "c", Setting: "registry.json"}
	unknown := dtrstorage.Backend{Unknown: "none of the 2 settings in dtr2.properties holds a registry storage configuration"}
	lost := errors.New("RethinkDB of replica x closed the connection")
	full, empty, incremental := &imagearchive.Manifest{}, &imagearchive.Manifest{}, &imagearchive.Manifest{}
	full.Blobs = 3
	incremental.OmittedBlobs = 3
	for _, tc := range []struct {
		name       string
		a          storageAnswer
		m          *imagearchive.Manifest
		err, print string
	}{
		{"filesystem", storageAnswer{backend: fs}, full, "", "DTR keeps its images in filesystem (root /storage) (its setting registry.json): volume v"},
		{"filesystem, every blob in the bases", storageAnswer{backend: fs}, incremental, "", "DTR keeps its images in filesystem"},
		{"azure with a stale volume", storageAnswer{backend: azure}, full, "DTR keeps its images in azure container c (its setting registry.json), not in volume v: this backup would restore no image; backup images reads filesystem, NFS and s3 storage only, nothing was written: back the container up with its provider's tools, and DTR's metadata with backup create", ""},
		{"filesystem, empty", storageAnswer{backend: fs}, empty, "volume v holds no image content, though DTR's setting registry.json says its images are there (filesystem (root /storage)): this backup would restore no image; check that it is the volume the replica's registry writes to", ""},
		{"unknown", storageAnswer{backend: unknown}, full, "", "DTR's storage configuration is unknown (none of the 2 settings"},
		{"unknown, empty", storageAnswer{backend: unknown}, empty, "volume v holds no image content, and DTR's storage configuration is unknown (none of the 2 settings", ""},
		{"unread", storageAnswer{err: lost}, full, "", "DTR's storage configuration could not be read (RethinkDB of replica x closed the connection): backing up volume v as it is, 3 blobs"},
		{"unread, empty", storageAnswer{err: lost}, empty, "volume v holds no image content, and DTR's storage configuration could not be read (RethinkDB of replica x closed the connection): this backup would restore no image", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var printed strings.Builder
			err := judgeStorage(tc.a, tc.m, "v", progress.NewMode(&printed, progress.Plain))
			if tc.err == "" {
				assert.NilError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.err)
				assert.Check(t, !strings.Contains(err.Error(), "\n"), "one line")
			}
			assert.Check(t, is.Contains(printed.String(), tc.print))
		})
	}
}

// The settings decide before anything is written: s3 turns the volume's
// read into the bucket's, another external driver is refused, and the
// listing's choice waits for them (the gate) without waiting for the bases.
func TestDecide(t *testing.T) {
	vol := &imagevolume.Volume{Name: "v"}
	o := Options{Volume: vol, Progress: progress.NewMode(io.Discard, progress.Plain)}
	assert.Check(t, errors.Is(decide(storageAnswer{backend: dtrstorage.Backend{Driver: "s3", Bucket: "b"}}, o), errUseBucket))
	assert.ErrorContains(t, decide(storageAnswer{backend: dtrstorage.Backend{Driver: "gcs", Bucket: "g"}}, o), "DTR keeps its images in gcs bucket g")
	assert.NilError(t, decide(storageAnswer{backend: dtrstorage.Backend{Driver: "filesystem"}}, o))
	assert.NilError(t, decide(storageAnswer{err: errors.New("unreadable")}, o))

	waited := false
	c := &chooser{
		bases: func() ([]*imagearchive.Base, error) { waited = true; return nil, nil },
		gate:  func() error { return errUseBucket },
		prog:  o.Progress,
	}
	_, err := c.Omit()
	assert.Check(t, errors.Is(err, errUseBucket))
	assert.Check(t, !waited, "the bases were waited for")
}
