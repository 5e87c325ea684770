package agent

import (
	"context"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/bucket"
)

// tree is what the agent lists, sends, measures and empties: the image
// volume's mount point, or DTR's S3 bucket (--bucket), sent as if it were
// mounted there.
type tree interface {
	// top is the tar's top directory, the mount point's base: "storage".
	top() string
	// walk calls fn for the root ("") and every entry under it, in the
	// order a directory walk meets them (see walk).
	walk(done <-chan struct{}, fn walkFunc) error
	// open reads a regular file; fs.ErrNotExist when it has gone.
	open(rel string) (io.ReadCloser, error)
}

// dirTree is a directory on the node.
type dirTree string

func (d dirTree) top() string { return filepath.Base(string(d)) }
func (d dirTree) walk(done <-chan struct{}, fn walkFunc) error {
	return walk(string(d), done, fn)
}
func (d dirTree) open(rel string) (io.ReadCloser, error) {
	return openFile(filepath.Join(string(d), filepath.FromSlash(rel)))
}

// bucketTree is DTR's bucket under its root directory. S3 has no
// directories: the walk makes up each one the objects' paths name, once,
// before its first entry. Its listing is read once and kept.
type bucketTree struct {
	ctx   context.Context
	b     *bucket.Bucket
	name  string
	files []bucket.File
	read  bool
	// ahead reads the send's objects ahead of it: from the plan on, or,
	// with a plan known before the listing ends (expect), while it lists.
	ahead *prefetcher
	early *planned
}

// expect is told of the plan before the listing starts: once it is read
// (a backup that leaves nothing out sends it at once), the objects listed
// are read ahead while the rest is listed.
func (t *bucketTree) expect(p *planned) { t.early = p }

// plan says what the send will read: every listed file but those left
// out; the objects are read ahead from then on, if they were not yet.
func (t *bucketTree) plan(omit map[string]int64) {
	if !t.read {
		return
	}
	if t.ahead == nil {
		t.ahead = newPrefetcher(t.ctx, t.b, omit)
		t.ahead.add(t.files...)
	}
	t.ahead.finish()
}

// done ends the reading ahead.
func (t *bucketTree) done() {
	if t.ahead != nil {
		t.ahead.stop()
	}
}

// list lists the bucket, reading ahead what is listed once the plan is
// known.
func (t *bucketTree) list() error {
	var pending []bucket.File
	files, err := t.b.List(t.ctx, func(f bucket.File) {
		if t.ahead != nil {
			t.ahead.add(f)
			return
		}
		pending = append(pending, f)
		if omit, ok := t.early.known(); ok {
			t.ahead = newPrefetcher(t.ctx, t.b, omit)
			t.ahead.add(pending...)
			pending = nil
		}
	})
	if err != nil {
		return err
	}
	t.files, t.read = files, true
	return nil
}

func (t *bucketTree) top() string { return t.name }

func (t *bucketTree) walk(done <-chan struct{}, fn walkFunc) error {
	if !t.read {
		if err := t.list(); err != nil {
			return err
		}
	}
	var newest int64
	for _, f := range t.files {
		newest = max(newest, f.ModTime)
	}
	if err := fn("", objectInfo{name: t.name, dir: true, mtime: newest}, ""); err != nil {
		return err
	}
	// open holds the directories of the last path, which the next one
	// shares a prefix of (the order is a walk's).
	var open []string
	for _, f := range t.files {
		select {
		case <-done:
			return errGone
		default:
		}
		dirs := strings.Split(f.Path, "/")
		dirs = dirs[:len(dirs)-1]
		i := 0
		for i < len(open) && i < len(dirs) && open[i] == dirs[i] {
			i++
		}
		open = append(open[:i], dirs[i:]...)
		for ; i < len(dirs); i++ {
			rel := strings.Join(dirs[:i+1], "/") + "/"
			if err := fn(rel, objectInfo{name: dirs[i], dir: true, mtime: f.ModTime}, ""); err != nil {
				return err
			}
		}
		if err := fn(f.Path, objectInfo{name: path.Base(f.Path), size: f.Size, mtime: f.ModTime}, ""); err != nil {
			return err
		}
	}
	return nil
}

func (t *bucketTree) open(rel string) (io.ReadCloser, error) {
	if t.ahead != nil {
		return t.ahead.open(rel)
	}
	return t.b.Open(t.ctx, rel)
}

// objectInfo is an object, or a directory its path names, as a file: what
// the registry's filesystem driver would have written (0644 files, 0755
// directories, root's).
type objectInfo struct {
	name  string
	size  int64
	mtime int64
	dir   bool
}

func (o objectInfo) Name() string       { return o.name }
func (o objectInfo) Size() int64        { return o.size }
func (o objectInfo) ModTime() time.Time { return time.Unix(o.mtime, 0) }
func (o objectInfo) IsDir() bool        { return o.dir }
func (o objectInfo) Sys() any           { return nil }
func (o objectInfo) Mode() fs.FileMode {
	if o.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
