package imagebackup

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The probe's handshake: the settings' line is the answer; on s3 the read
// goes on only once the backup takes the bucket, and stops without
// writing when it does not.
func TestProbe(t *testing.T) {
	s3 := dtrstorage.Backend{Driver: "s3", Bucket: "images", Setting: "storage.yml"}
	fs := dtrstorage.Backend{Driver: "filesystem", RootDirectory: "/storage", Setting: "storage.yml"}

	t.Run("filesystem: the answer, and the read ends", func(t *testing.T) {
		ended := make(chan error, 1)
		p := startProbe(context.Background(), func(ctx context.Context, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
			err := storage(fs)
			ended <- err
			return nil, err
		})
		a := p.answer()
		assert.NilError(t, a.err)
		assert.Check(t, is.Equal(a.backend, fs))
		assert.Check(t, errors.Is(<-ended, errNotBucket))
		p.stop()
		assert.Check(t, is.Equal(p.answer(), a), "the answer is kept")
	})

	t.Run("s3: the read goes on once the bucket is taken", func(t *testing.T) {
		wrote := make(chan struct{})
		p := startProbe(context.Background(), func(ctx context.Context, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
			if err := storage(s3); err != nil {
				return nil, err
			}
			close(wrote)
			return &imagearchive.Manifest{Volume: "dtr-registry-r1"}, nil
		})
		assert.Check(t, is.Equal(p.answer().backend, s3))
		select {
		case <-wrote:
			t.Fatal("the bucket's read went on before the backup took it")
		case <-time.After(50 * time.Millisecond):
		}
		m, err := p.bucket()
		assert.NilError(t, err)
		assert.Check(t, is.Equal(m.Volume, "dtr-registry-r1"))
		p.stop()
	})

	t.Run("s3, not taken: the read stops before writing", func(t *testing.T) {
		wrote := false
		p := startProbe(context.Background(), func(ctx context.Context, storage func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
			if err := storage(s3); err != nil {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			wrote = true
			return &imagearchive.Manifest{}, nil
		})
		assert.Check(t, is.Equal(p.answer().backend, s3))
		p.stop()
		assert.Check(t, !wrote, "the read went on after stop")
	})

	t.Run("failed before the settings: the error is the answer", func(t *testing.T) {
		boom := errors.New("the agent cannot run on node n1")
		p := startProbe(context.Background(), func(context.Context, func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
			return nil, boom
		})
		assert.Check(t, is.ErrorIs(p.answer().err, boom))
		p.stop()
	})

	t.Run("interrupted while waiting for the answer", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := startProbe(ctx, func(ctx context.Context, _ func(dtrstorage.Backend) error) (*imagearchive.Manifest, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		cancel()
		assert.Check(t, is.ErrorIs(p.answer().err, context.Canceled))
		p.stop()
	})
}
