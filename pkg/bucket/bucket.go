// Package bucket reads and writes DTR's image content where its registry
// keeps it in S3 (or an S3-compatible store), through docker/distribution's
// own s3-aws storage driver: the code DTR's registry runs, with the
// parameters DTR's configuration gives it (pkg/dtrstorage.ReadConfig).
// Only the agent uses it, in a helper on a DTR node: the credentials never
// leave the node.
//
// Paths are relative to the configured root directory and "/"-separated,
// as in the registry's volume: docker/registry/v2/blobs/….
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	s3 "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
)

// Bucket is DTR's registry storage in S3.
type Bucket struct {
	d       storagedriver.StorageDriver
	Backend dtrstorage.Backend
}

// Open makes the driver from DTR's storage parameters. Only the s3 driver
// is read; any other is refused, naming it and its place (no credential).
func Open(ctx context.Context, b dtrstorage.Backend, params map[string]any) (*Bucket, error) {
	if b.Driver != "s3" {
		return nil, fmt.Errorf("DTR keeps its images in %s: only the s3 driver is read from a bucket", b)
	}
	// The driver logs nothing unless asked; it is never asked here.
	p := make(map[string]any, len(params))
	for k, v := range params {
		if k != "loglevel" {
			p[k] = v
		}
	}
	d, err := s3.FromParameters(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("opening %s with DTR's parameters: %w", b, err)
	}
	return &Bucket{d: d, Backend: b}, nil
}

// FromDriver is a Bucket on any of distribution's drivers: tests use its
// in-memory one.
func FromDriver(d storagedriver.StorageDriver, b dtrstorage.Backend) *Bucket {
	return &Bucket{d: d, Backend: b}
}

// File is one object: its path and what S3 says of it.
type File struct {
	Path    string // relative to the root, no leading "/"
	Size    int64
	ModTime int64 // Unix seconds
}

// Files lists every object under the root, in the order a directory walk
// meets them (component by component: "a/b" before "a-b"), which is the
// order of the engine's archive of a volume and of an image archive's
// manifest.
func (b *Bucket) Files(ctx context.Context) ([]File, error) { return b.List(ctx, nil) }

// List is Files, handing each object to seen as it is listed (in S3's
// order, by bytes), when seen is not nil: what is listed first can be
// read while the rest is listed.
func (b *Bucket) List(ctx context.Context, seen func(File)) ([]File, error) {
	var files []File
	err := b.d.Walk(ctx, "/", func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			f := File{Path: strings.TrimPrefix(fi.Path(), "/"), Size: fi.Size(), ModTime: fi.ModTime().Unix()}
			files = append(files, f)
			if seen != nil {
				seen(f)
			}
		}
		return nil
	})
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		err = nil // nothing under the root yet
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", b.Backend, err)
	}
	slices.SortFunc(files, func(x, y File) int { return imagearchive.WalkCompare(x.Path, y.Path) })
	return files, nil
}

// Open reads an object; a missing one is fs.ErrNotExist.
func (b *Bucket) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	r, err := b.d.Reader(ctx, "/"+path, 0)
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return nil, fs.ErrNotExist
	}
	return r, err
}

// Put writes an object from r, which holds exactly size bytes.
func (b *Bucket) Put(ctx context.Context, path string, r io.Reader, size int64) error {
	w, err := b.d.Writer(ctx, "/"+path, false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(w, r)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes of %d", n, size)
	}
	if err != nil {
		w.Cancel(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Commit(ctx); err != nil {
		w.Cancel(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	return w.Close()
}

// Empty deletes everything under the root, and returns how many of the
// root's entries it deleted.
func (b *Bucket) Empty(ctx context.Context) (int, error) {
	names, err := b.d.List(ctx, "/")
	if errors.As(err, new(storagedriver.PathNotFoundError)) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", b.Backend, err)
	}
	n := 0
	var errs []error
	for _, name := range names {
		err := b.d.Delete(ctx, name)
		if err != nil && !errors.As(err, new(storagedriver.PathNotFoundError)) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
