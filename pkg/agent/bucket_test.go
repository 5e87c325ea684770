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
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/docker-dtr/docker-dtr/pkg/bucket"
	"github.com/docker-dtr/docker-dtr/pkg/dtrstorage"
	"github.com/google/go-cmp/cmp"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// bucketOf puts the regular files of dir into an in-memory bucket (S3
// keeps no directories and no links).
func bucketOf(t *testing.T, dir string) *bucketTree {
	ctx := context.Background()
	b := bucket.FromDriver(inmemory.New(), dtrstorage.Backend{Driver: "s3", Bucket: "test"})
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
		var kept []walked
		if listed {
			assert.NilError(t, list(tree, io.Discard, func(w walked) { kept = append(kept, w) }))
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
	for name, data := range files {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, data, 0o644))
	}
	want := entriesOf(t, sendTar(t, dir, nil))
	tree := bucketOf(t, dir)
	var kept []walked
	assert.NilError(t, list(tree, io.Discard, func(w walked) { kept = append(kept, w) }))
	var b bytes.Buffer
	assert.NilError(t, sendFrom(tree, kept, nil, &b, nil))
	assert.DeepEqual(t, entriesOf(t, b.Bytes()), want, cmpEntries)
	assert.Check(t, is.Equal(tree.ahead.held, int64(0)), "everything read ahead was taken")
}

// A large object that shrank after the listing fails the send, naming
// it, and the objects streamed after it end with the send.
func TestSendBucketLargeShrank(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "storage")
	big := bytes.Repeat([]byte("x"), prefetchWhole+1)
	files := map[string][]byte{
		"docker/registry/v2/blobs/sha256/11/b/data": big,
		"docker/registry/v2/blobs/sha256/22/c/data": big,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, data, 0o644))
	}
	tree := bucketOf(t, dir)
	var kept []walked
	assert.NilError(t, list(tree, io.Discard, func(w walked) { kept = append(kept, w) }))
	assert.NilError(t, tree.b.Put(context.Background(), "docker/registry/v2/blobs/sha256/11/b/data", strings.NewReader("short"), 5))
	err := sendFrom(tree, kept, nil, io.Discard, nil)
	assert.ErrorContains(t, err, "11/b/data")
}
