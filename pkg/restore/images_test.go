package restore

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/journal"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// ImageStore writes where DTR's settings say, unless --to-volume asks
// for the volume: then the volume, with a warning where the settings name
// a bucket, and an error where there is no volume to write.
func TestImageStore(t *testing.T) {
	s3 := dtrstorage.Backend{Driver: "s3", Bucket: "dtr-images", Region: "us-east-1", Setting: "storage.yml"}
	azure := dtrstorage.Backend{Driver: "azure", Container: "dtr", Setting: "storage.yml"}
	fs := dtrstorage.Backend{Driver: "filesystem", RootDirectory: "/storage", Setting: "storage.yml"}
	settings := func(b dtrstorage.Backend, err error) func(context.Context) (dtrstorage.Backend, error) {
		return func(context.Context) (dtrstorage.Backend, error) { return b, err }
	}
	for _, tc := range []struct {
		name       string
		noVolume   bool
		storage    func(context.Context) (dtrstorage.Backend, error)
		toVolume   bool
		wantBucket bool
		wantErr    string
		wantOut    string
	}{
		{name: "filesystem", storage: settings(fs, nil)},
		{name: "s3 writes the bucket", storage: settings(s3, nil), wantBucket: true, wantOut: "the restore writes there"},
		{name: "s3 with no volume writes the bucket", noVolume: true, storage: settings(s3, nil), wantBucket: true},
		{name: "azure is refused", storage: settings(azure, nil), wantErr: "restore writes filesystem, NFS and s3 storage only, nothing was changed"},
		{name: "s3 --to-volume writes the volume", storage: settings(s3, nil), toVolume: true,
			wantOut: "--to-volume writes volume dtr-registry-0123456789ab instead, which DTR's registry serves only once its storage is set to filesystem"},
		{name: "azure --to-volume writes the volume", storage: settings(azure, nil), toVolume: true, wantOut: "--to-volume writes volume"},
		{name: "filesystem --to-volume", storage: settings(fs, nil), toVolume: true, wantOut: "--to-volume: restoring into volume dtr-registry-0123456789ab"},
		{name: "unread settings --to-volume", storage: settings(dtrstorage.Backend{}, errors.New("no database")), toVolume: true},
		{name: "--to-volume with no volume", noVolume: true, storage: settings(s3, nil), toVolume: true, wantErr: "--to-volume: replica 0123456789ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &dtr.Replica{ID: "0123456789ab", Node: "node1", Containers: []dtr.Container{{Component: "registry", ImageID: "sha256:reg"}}}
			if !tc.noVolume {
				rep.ImageStorage = &dtr.Mount{Type: "volume", Name: "dtr-registry-0123456789ab", Driver: "local"}
			}
			var out bytes.Buffer
			vol, err := ImageStore(context.Background(), rep, tc.storage, tc.toVolume, progress.NewMode(&out, progress.Plain))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			assert.NilError(t, err)
			assert.Check(t, is.Equal(vol.Bucket != nil, tc.wantBucket))
			if !tc.wantBucket {
				assert.Check(t, is.Equal(vol.Name, "dtr-registry-0123456789ab"))
			}
			assert.Check(t, is.Contains(out.String(), tc.wantOut))
		})
	}
}

// The journal keeps --to-volume, so that --resume and --undo write the
// volume the restore wrote, not a bucket the settings name.
func TestImagesJournalToVolume(t *testing.T) {
	for _, toVolume := range []bool{false, true} {
		im := newImages(true, "", false)
		im.ToVolume = toVolume
		var r journal.Record
		im.Journal(&r)
		assert.Check(t, is.Equal(r.ToVolume, toVolume))
		assert.Check(t, is.Equal(r.Volume, "dtr-registry-0123456789ab"))
		assert.Check(t, r.VolumeEmpty)
	}
}
