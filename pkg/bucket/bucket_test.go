package bucket

import (
	"context"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The bucket on distribution's in-memory driver: what Put writes, Files
// lists in a walk's order and Open reads; Empty leaves nothing.
func TestBucket(t *testing.T) {
	ctx := context.Background()
	b := FromDriver(inmemory.New(), dtrstorage.Backend{Driver: "s3", Bucket: "test"})
	files, err := b.Files(ctx)
	assert.NilError(t, err)
	assert.Check(t, is.Len(files, 0), "an empty bucket lists nothing")

	put := map[string]string{
		"docker/registry/v2/blobs/sha256/ab/abcd/data":                            "blob",
		"docker/registry/v2/repositories/a-b/_layers/sha256/abcd/link":            "sha256:abcd",
		"docker/registry/v2/repositories/a/b/_manifests/tags/latest/current/link": "sha256:ef",
		"docker/registry/v2/repositories/a/_layers/sha256/abcd/link":              "sha256:abcd",
	}
	for p, data := range put {
		assert.NilError(t, b.Put(ctx, p, strings.NewReader(data), int64(len(data))))
	}
	err = b.Put(ctx, "short", strings.NewReader("ab"), 3)
	assert.ErrorContains(t, err, "2 bytes of 3")

	files, err = b.Files(ctx)
	assert.NilError(t, err)
	var got []string
	for _, f := range files {
		got = append(got, f.Path)
		assert.Check(t, is.Equal(f.Size, int64(len(put[f.Path]))), f.Path)
	}
	assert.DeepEqual(t, got, []string{
		"docker/registry/v2/blobs/sha256/ab/abcd/data",
		"docker/registry/v2/repositories/a/_layers/sha256/abcd/link",
		"docker/registry/v2/repositories/a/b/_manifests/tags/latest/current/link",
		"docker/registry/v2/repositories/a-b/_layers/sha256/abcd/link",
	})

	r, err := b.Open(ctx, "docker/registry/v2/blobs/sha256/ab/abcd/data")
	assert.NilError(t, err)
	data, err := io.ReadAll(r)
	r.Close()
	assert.NilError(t, err)
	assert.Equal(t, string(data), "blob")
	_, err = b.Open(ctx, "docker/gone")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	n, err := b.Empty(ctx)
	assert.NilError(t, err)
	assert.Check(t, n >= 1)
	files, err = b.Files(ctx)
	assert.NilError(t, err)
	assert.Check(t, is.Len(files, 0))
}

// Open refuses every driver but s3, naming the place and no secret.
func TestOpenOnlyS3(t *testing.T) {
	_, err := Open(context.Background(), dtrstorage.Backend{Driver: "azure", Container: "images"}, map[string]any{"accountkey": "s3cr3t"})
	assert.ErrorContains(t, err, "azure container images: only the s3 driver")
	assert.Check(t, !strings.Contains(err.Error(), "s3cr3t"))
}
