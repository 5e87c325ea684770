package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// bucketOf puts the regular files of dir into an in-memory bucket (S3
// keeps no directories and no links).
func bucketOf(t *testing.T, dir string) *bucketTree { return bucketIn(t, dir, inmemory.New()) }

// bucketIn is bucketOf on the driver d.
func bucketIn(t *testing.T, dir string, d storagedriver.StorageDriver) *bucketTree {
	ctx := context.Background()
	b := bucket.FromDriver(d, dtrstorage.Backend{Driver: "s3", Bucket: "test"})
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		return b.Put(ctx, filepath.ToSlash(rel), bytes.NewReader(data), int64(len(data)))
	})
	assert.NilError(t, err)
	return &bucketTree{ctx: ctx, b: b, name: "storage"}
}

type tarEntrySeen struct {
	name string
	typ  byte
	size int64
	data string // sha256
}

func entriesOf(t *testing.T, archive []byte) []tarEntrySeen {
	t.Helper()
	var seen []tarEntrySeen
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return seen
		}
		assert.NilError(t, err)
		h := sha256.New()
		_, err = io.Copy(h, tr)
		assert.NilError(t, err)
		seen = append(seen, tarEntrySeen{hdr.Name, hdr.Typeflag, hdr.Size, hex.EncodeToString(h.Sum(nil))})
	}
}

// A bucket is sent as its volume would be: the same names in the same
// order, the directories its paths name made up, the same data, blobs
// left out and uploads without data alike. Only the link is missing (S3
// keeps none).
func TestSendBucketAsVolume(t *testing.T) {
	dir, blobs := sendVolume(t, 5)
	omit := map[string]int64{blobs[1]: 20001}
	assert.NilError(t, os.Remove(filepath.Join(dir, "docker/registry/v2/repositories/alias")))
	fromDir := entriesOf(t, sendTar(t, dir, omit))

	// As send does: the listing first, whose entries the send goes over
	// (the small objects read ahead), or a walk of its own.
	for _, listed := range []bool{true, false} {
		tree := bucketOf(t, dir)
		var kept *keptList // walked again
		if listed {
			kept = &keptList{}
			assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
		}
		var b bytes.Buffer
		assert.NilError(t, sendFrom(tree, kept, omit, &b, nil))
		assert.DeepEqual(t, entriesOf(t, b.Bytes()), fromDir, cmpEntries)
		assert.Check(t, is.Equal(tree.ahead != nil, listed), "read ahead")
	}
}

var cmpEntries = cmp.AllowUnexported(tarEntrySeen{})

// receive writes a tar into the bucket, and refuses a stream that ends
// without its end line.
func TestReceive(t *testing.T) {
	dir, _ := sendVolume(t, 3)
	assert.NilError(t, os.Remove(filepath.Join(dir, "docker/registry/v2/repositories/alias")))
	want := bucketOf(t, dir)
	wantFiles, err := want.b.Files(context.Background())
	assert.NilError(t, err)

	// The content of a restore: names relative to the mount point.
	var content bytes.Buffer
	tw := tar.NewWriter(&content)
	for _, f := range wantFiles {
		r, err := want.b.Open(context.Background(), f.Path)
		assert.NilError(t, err)
		data, _ := io.ReadAll(r)
		r.Close()
		assert.NilError(t, tw.WriteHeader(&tar.Header{Name: f.Path, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}))
		tw.Write(data)
	}
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "docker/", Typeflag: tar.TypeDir, Mode: 0o755}))
	assert.NilError(t, tw.Close())

	got := bucket.FromDriver(inmemory.New(), dtrstorage.Backend{Driver: "s3", Bucket: "restored"})
	var out strings.Builder
	err = receive(context.Background(), got, io.MultiReader(bytes.NewReader(content.Bytes()), strings.NewReader(ReceiveEnd)), &out)
	assert.NilError(t, err)
	assert.Check(t, is.Contains(out.String(), "wrote 9 files"))
	gotFiles, err := got.Files(context.Background())
	assert.NilError(t, err)
	assert.DeepEqual(t, pathsOf(gotFiles), pathsOf(wantFiles))

	cut := bucket.FromDriver(inmemory.New(), dtrstorage.Backend{Driver: "s3", Bucket: "cut"})
	err = receive(context.Background(), cut, bytes.NewReader(content.Bytes()), io.Discard)
	assert.ErrorContains(t, err, "ended without its end line")
}

func pathsOf(files []bucket.File) []string {
	var p []string
	for _, f := range files {
		p = append(p, f.Path+" "+strconv.FormatInt(f.Size, 10))
	}
	return p
}

// A large object is streamed ahead, and sent whole, in order, between
// small ones, as the bucket holds it.
func TestSendBucketLarge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	big := make([]byte, 2*prefetchWhole+12345)
	for i := range big {
		big[i] = byte(i * 7)
	}
	files := map[string][]byte{
		"docker/registry/v2/blobs/sha256/00/a/data": []byte("small"),
		"docker/registry/v2/blobs/sha256/11/b/data": big,
		"docker/registry/v2/blobs/sha256/22/c/data": {},
		"docker/registry/v2/blobs/sha256/33/d/data": []byte("after"),
	}
	writeFiles(t, dir, files)
	want := entriesOf(t, sendTar(t, dir, nil))
	tree := bucketOf(t, dir)
	kept := &keptList{}
	assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
	var b bytes.Buffer
	assert.NilError(t, sendFrom(tree, kept, nil, &b, nil))
	assert.DeepEqual(t, entriesOf(t, b.Bytes()), want, cmpEntries)
	assert.Check(t, is.Equal(tree.ahead.held, int64(0)), "everything read ahead was taken")
}

// A large object that shrank after the listing fails the send, naming
// it, and the objects streamed after it end with the send.
func TestSendBucketLargeShrank(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	big := bytes.Repeat([]byte("x"), int(prefetchWhole)+1)
	files := map[string][]byte{
		"docker/registry/v2/blobs/sha256/11/b/data": big,
		"docker/registry/v2/blobs/sha256/22/c/data": big,
	}
	writeFiles(t, dir, files)
	tree := bucketOf(t, dir)
	kept := &keptList{}
	assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
	assert.NilError(t, tree.b.Put(context.Background(), "docker/registry/v2/blobs/sha256/11/b/data", strings.NewReader("short"), 5))
	err := sendFrom(tree, kept, nil, io.Discard, nil)
	assert.ErrorContains(t, err, "11/b/data")
}

// writeFiles writes files (name under dir: content), and their directories.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, data, 0o644))
	}
}

// planKnown is a plan read before the listing: nothing left out.
func planKnown() *planned {
	p := &planned{ready: make(chan struct{})}
	close(p.ready)
	return p
}

// readDuringList is a bucket whose listing stops after its first object
// until that object is read: it lists on only if a read overlaps it.
type readDuringList struct {
	storagedriver.StorageDriver
	read chan struct{}
	once sync.Once
}

func (d *readDuringList) Walk(ctx context.Context, from string, fn storagedriver.WalkFn, opts ...func(*storagedriver.WalkOptions)) error {
	first := true
	return storagedriver.WalkFallback(ctx, d, from, func(fi storagedriver.FileInfo) error {
		if err := fn(fi); err != nil || fi.IsDir() || !first {
			return err
		}
		first = false
		select {
		case <-d.read:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("nothing was read while the bucket was listed")
		}
	}, opts...)
}

func (d *readDuringList) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	d.once.Do(func() { close(d.read) })
	return d.StorageDriver.Reader(ctx, path, offset)
}

// With the plan known before the listing (a backup with no earlier one
// says "end" at once), objects are read while the rest is listed, and
// the send is the same.
func TestSendBucketReadsWhileListing(t *testing.T) {
	dir, _ := sendVolume(t, 5)
	assert.NilError(t, os.Remove(filepath.Join(dir, "docker/registry/v2/repositories/alias")))
	want := entriesOf(t, sendTar(t, dir, nil))

	tree := bucketIn(t, dir, &readDuringList{StorageDriver: inmemory.New(), read: make(chan struct{})})
	tree.expect(planKnown())
	kept := &keptList{}
	assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
	var b bytes.Buffer
	assert.NilError(t, sendFrom(tree, kept, nil, &b, nil))
	assert.DeepEqual(t, entriesOf(t, b.Bytes()), want, cmpEntries)
}

// s3Order lists as S3 does: every object, by its key's bytes ("x-y/a"
// before "x/s"), where the in-memory driver walks directory by directory.
type s3Order struct{ storagedriver.StorageDriver }

func (d s3Order) Walk(ctx context.Context, from string, fn storagedriver.WalkFn, opts ...func(*storagedriver.WalkOptions)) error {
	var objects []storagedriver.FileInfo
	err := storagedriver.WalkFallback(ctx, d.StorageDriver, from, func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() {
			objects = append(objects, fi)
		}
		return nil
	}, opts...)
	if err != nil {
		return err
	}
	slices.SortFunc(objects, func(a, b storagedriver.FileInfo) int { return strings.Compare(a.Path(), b.Path()) })
	for _, fi := range objects {
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// S3 lists by bytes ("x-y/a" before "x/s"), the send goes as a directory
// walk does ("x/s" first). Read ahead in the listing's order, the bound
// fills, or every request is held, with what the send takes later: the
// send reads the file it wants itself instead of waiting for ever.
func TestSendBucketListOrderIsNotSendOrder(t *testing.T) {
	for _, tc := range []struct {
		name                string
		whole, bound, ahead int64
		reads               int
		size                int
	}{
		{name: "bound full", whole: 1 << 20, bound: 1000, ahead: 16 << 20, reads: 16, size: 600},
		// Each stream holds its request until the send reads on: 3 MiB
		// each, 1 MiB read ahead.
		{name: "requests held by streams", whole: 100, bound: 64 << 20, ahead: 1 << 20, reads: 2, size: 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(w, b, a int64, r int) {
				prefetchWhole, prefetchBytes, streamAhead, prefetchReads = w, b, a, r
			}(prefetchWhole, prefetchBytes, streamAhead, prefetchReads)
			prefetchWhole, prefetchBytes, streamAhead, prefetchReads = tc.whole, tc.bound, tc.ahead, tc.reads
			dir := filepath.Join(t.TempDir(), "storage")
			files := map[string][]byte{
				"x-y/a": bytes.Repeat([]byte("a"), tc.size),
				"x-y/b": bytes.Repeat([]byte("b"), tc.size),
				"x-y/c": bytes.Repeat([]byte("c"), tc.size),
				"x/s":   []byte("small"),
			}
			writeFiles(t, dir, files)
			want := entriesOf(t, sendTar(t, dir, nil))
			tree := bucketIn(t, dir, s3Order{inmemory.New()})
			tree.expect(planKnown())
			kept := &keptList{}
			assert.NilError(t, list(tree, io.Discard, func(w walked) { assert.Assert(t, kept.add(w)) }))
			assert.Check(t, tree.ahead != nil, "read ahead while listing")
			done := make(chan error, 1)
			var b bytes.Buffer
			go func() { done <- sendFrom(tree, kept, nil, &b, nil) }()
			select {
			case err := <-done:
				assert.NilError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("the send waited for ever on what it reads later")
			}
			assert.DeepEqual(t, entriesOf(t, b.Bytes()), want, cmpEntries)
			assert.Check(t, is.Equal(tree.ahead.held, int64(0)), "everything read ahead was taken")
		})
	}
}
